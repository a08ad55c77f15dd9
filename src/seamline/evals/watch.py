"""Regressions caught by themselves: the gate's suite runs when something it guards changes,
and the time from the change to the verdict is recorded, so "how quickly does the suite
catch a regression" has a number (``seamline evals runs`` shows it per run).

Two kinds of change are watched, for every prompt that names an eval set:

* **pushed**: its latest version has no finished run on that eval set. It is run against
  ``production``; the change happened when the version was pushed.
* **upstream**: the model behind the version in ``production`` answers as another model or
  another build than in that version's last run (the upstream's reported ``model`` or its
  ``system_fingerprint``; a registry model configuration pointed at another upstream model
  shows the same way). One case is asked afresh to find out (a probe, one call per prompt
  and check); on a difference the suite runs again with fresh answers. The change is dated
  when it was detected: an upstream does not say when it changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from seamline.core.clock import isoformat, utcnow
from seamline.core.errors import NotFound, SeamlineError
from seamline.evals.calls import PROBE_USE_CASE
from seamline.evals.evaluation import PRODUCTION, Evaluation, Outcome, RunRequest
from seamline.evals.runner import request_for
from seamline.evals.runs import FINISHED

PUSHED, UPSTREAM = "pushed", "upstream"


@dataclass(frozen=True)
class Change:
    prompt: str  # NAME@VERSION
    kind: str  # pushed or upstream
    detail: str
    changed_at: datetime

    def as_trigger(self) -> dict[str, str]:
        return {
            "change": self.kind,
            "detail": self.detail,
            "changed_at": isoformat(self.changed_at),
        }


@dataclass(frozen=True)
class Verdict:
    change: Change
    outcome: Outcome


class Watcher:
    """Finds changes for one actor's prompts and runs their suites."""

    def __init__(
        self, evaluation: Evaluation, prompts: list[str] | None = None, *, probe: bool = True
    ) -> None:
        self.evaluation = evaluation
        self.prompts = prompts
        self.probe = probe

    async def changes(self) -> list[Change]:
        registry, actor = self.evaluation.registry, self.evaluation.actor
        found: list[Change] = []
        for item in registry.list_artefacts(actor, "prompt"):
            if self.prompts is not None and item.name not in self.prompts:
                continue
            latest = registry.get_version(actor, "prompt", item.name, None)
            eval_set = latest.content.get("eval_set")
            if not eval_set:
                continue
            if not self._has_run(item.name, latest.number, latest.content_hash):
                found.append(
                    Change(
                        f"{item.name}@{latest.number}", PUSHED, "a new version", latest.created_at
                    )
                )
            elif self.probe and PRODUCTION in item.aliases:
                change = await self._upstream_change(item.name)
                if change is not None:
                    found.append(change)
        return found

    async def check(self) -> list[Verdict]:
        """Run the suite of every change found now; their verdicts."""
        verdicts = []
        for change in await self.changes():
            request = RunRequest(
                prompt=change.prompt,
                against=PRODUCTION if change.kind == PUSHED else None,
                refresh=change.kind == UPSTREAM,
                trigger=change.as_trigger(),
            )
            verdicts.append(Verdict(change, await self.evaluation.run(request)))
        return verdicts

    def _has_run(self, name: str, version: int, content_hash: str) -> bool:
        runs = self.evaluation.store.latest(prompt_name=name, prompt_hash=content_hash)
        return any(r.status == FINISHED and r.subject.prompt_version == version for r in runs)

    async def _upstream_change(self, name: str) -> Change | None:
        """The production version's upstream, asked one case afresh, against what answered
        its last finished run."""
        prompt = self.evaluation.prompt(name, PRODUCTION)
        runs = [
            r
            for r in self.evaluation.store.latest(prompt_name=name, prompt_hash=prompt.content_hash)
            if r.status == FINISHED and r.report
        ]
        if not runs:
            return None
        seen = {tuple(pair) for pair in (runs[0].report or {}).get("upstream", [])}
        try:
            eval_set, _ = self.evaluation.eval_set(prompt, runs[0].subject.eval_set_ref)
        except NotFound:
            return None
        for case in eval_set.cases:  # the first case the version renders
            try:
                model, body = request_for(prompt, case, None)
                break
            except SeamlineError:
                continue
        else:
            return None
        fresh = await self.evaluation.call(model, body, use_case=PROBE_USE_CASE)
        now = (fresh.upstream_model, fresh.system_fingerprint)
        if not seen or now in seen:
            return None
        before = ", ".join(f"{m} {fp or ''}".strip() for m, fp in sorted(seen, key=str))
        detail = f"{model} answers as {now[0]} {now[1] or ''}".strip() + f" (was {before})"
        return Change(f"{name}@{prompt.version}", UPSTREAM, detail, utcnow())
