"""The gateway's own checking of the ``[[alerts]]`` rules, every ``alert_interval_s`` off
the event loop, and the re-prompting triggers: a rule with ``run_evals`` starts the eval
suite of each prompt its alert concerns (a model that changed under its name, a quality or
feedback drop, a stale index), through this gateway, the alert's id on the run.

It sits above the request path (it runs evals, which call models through ``chat``) and is
started and stopped with the server (``app``).
"""

from __future__ import annotations

import asyncio
import logging

from seamline.core.clock import isoformat, utcnow
from seamline.evals.evaluation import Evaluation, RunRequest
from seamline.gateway.chat import EvalModelCall
from seamline.gateway.core import Gateway
from seamline.monitoring.alerts import AlertStore, Firing
from seamline.monitoring.delivery import run_alerts
from seamline.registry.workspace import local_actor

log = logging.getLogger("seamline.gateway")
EVAL_ACTOR = "seamline-alerts"  # who a triggered eval run is recorded as started by


class Alerting:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.gateway.settings.alerts:
            self._task = asyncio.create_task(self._every_interval())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _every_interval(self) -> None:
        """A failed check is logged and the next one runs."""
        while True:
            await asyncio.sleep(self.gateway.config.alert_interval_s)
            await self.check()

    async def check(self) -> list[Firing]:
        settings = self.gateway.settings
        try:
            fired = await asyncio.to_thread(
                run_alerts,
                self.gateway.registry.db,
                settings.alerts,
                settings.alert_webhook,
                utcnow(),
            )
        except Exception:
            log.exception("checking alerts failed")
            return []
        rules = {rule.name: rule for rule in settings.alerts}
        for firing in fired:
            self.gateway.metrics.alert_fired(firing.rule, firing.kind)
            rule = rules.get(firing.rule)
            if rule is not None and rule.run_evals and firing.project_id is not None:
                for prompt in firing.evidence.get("prompts") or []:
                    self.gateway.in_background(self._run_evals(firing, prompt))
        return fired

    async def _run_evals(self, firing: Firing, prompt: str) -> None:
        """The prompt's production version run on its eval set, the alert as its trigger;
        the run's id (or why there is none) kept with the alert."""
        db = self.gateway.registry.db
        store = AlertStore(db)
        try:
            assert firing.project_id is not None
            project = await asyncio.to_thread(store.project_name, firing.project_id)
            actor = await asyncio.to_thread(local_actor, db, project, EVAL_ACTOR)
            evaluation = Evaluation(
                self.gateway.registry, actor, EvalModelCall(self.gateway, actor)
            )
            request = RunRequest(
                prompt=f"{prompt}@production",
                trigger={"alert": firing.id, "kind": firing.kind, "at": isoformat(utcnow())},
            )
            outcome = await evaluation.run(request)
            result = {"prompt": prompt, "run": outcome.run.id, "passed": outcome.report.passed}
        except Exception as exc:  # no eval set, no production version: said on the alert
            result = {"prompt": prompt, "error": str(exc)[:300]}
        await asyncio.to_thread(store.add_eval_run, firing.id, result)
