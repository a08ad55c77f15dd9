"""A policy at work on one call: what each rule found in the messages going up and in the
answer coming back, and what was done about it.

The engine is the policy made executable: detectors built once per policy version, rules
grouped by the content they look at. It returns verdicts (rewritten text, the actions taken,
whether to block) and leaves answering to its caller (the gateway's guard stages, ``seamline
guard test``). In shadow mode everything is found and recorded, and nothing is changed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from seamline.core.errors import Unavailable
from seamline.guards.detectors import EXFILTRATION, JUDGE, LEAKAGE, PER_CALL, SCHEMA, detector
from seamline.guards.embeddings import CallEmbeddings
from seamline.guards.findings import Detector, EmbeddingDetector, Finding
from seamline.guards.judge import InjectionJudge
from seamline.guards.output import (
    CanaryLeak,
    ExfiltrationDetector,
    SchemaCheck,
    new_canary,
    with_canary,
)
from seamline.guards.policy import INPUT_KINDS, GuardPolicySpec, GuardRule
from seamline.guards.redact import Pseudonymiser, mask_token
from seamline.guards.stream_scan import StreamScanner

# Message roles as a policy names their content.
KIND_OF_ROLE = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}
UNTRUSTED_KINDS = frozenset({"tool", "untrusted"})
# Content parts that carry text, by type: the field holding it.
TEXT_FIELD_OF_PART = {
    "text": "text",
    "input_text": "text",
    "output_text": "text",
    "refusal": "refusal",
}
# Content parts that carry no text for a detector to read (OpenAI chat, Responses, Anthropic
# shapes), passed through as they are.
MEDIA_PARTS = frozenset(
    {"image_url", "input_audio", "file", "image", "input_image", "input_file", "audio"}
)
# Characters a streamed answer is held back for its output rules: the stream scanner's
# least, longer than every fixed-length key format it knows.
STREAM_WINDOW = 128


@dataclass(frozen=True)
class GuardAction:
    """One rule's finding and what came of it: a line of the event's ``guard_actions``."""

    policy: str  # name@version
    detector: str
    label: str
    score: float
    action: str  # block, redact, pseudonymise, flag
    where: str  # messages[2], variables.context, output
    enforced: bool  # False in shadow mode

    def as_record(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "detector": self.detector,
            "label": self.label,
            "score": round(self.score, 4),
            "action": self.action,
            "where": self.where,
            "enforced": self.enforced,
        }


@dataclass
class Verdict:
    """What a guard stage found: the actions, the one that blocks (if enforced), the time."""

    actions: list[GuardAction] = field(default_factory=list)
    blocked: GuardAction | None = None
    elapsed_ms: float = 0.0
    # The highest score of each detector's findings, whatever the thresholds.
    scores: dict[str, float] = field(default_factory=dict)
    # The call's MiniLM embeddings: what a detector embedded, later stages read.
    embeddings: CallEmbeddings = field(default_factory=CallEmbeddings)
    # When the caller defers slow rules that only record (see ``GuardEngine.deferred``):
    # the texts left for them, as (text, kind, where).
    deferred: list[tuple[str, str, str]] | None = None


@dataclass
class InputVerdict(Verdict):
    messages: list[dict[str, Any]] = field(default_factory=list)  # as they go upstream
    pseudonymiser: Pseudonymiser | None = None  # restores placeholders in the answer
    canary: str | None = None  # placed in the system prompt, looked for in the answer


@dataclass
class OutputVerdict(Verdict):
    stored: str = ""  # the answer redacted, placeholders kept: what an event may record
    text: str = ""  # the answer as the caller gets it: placeholders restored
    # Set when a schema rule asks for one more try: what to tell the model.
    reask: str | None = None


@dataclass(frozen=True)
class _Compiled:
    rule: GuardRule
    detector: Detector | None  # None for leakage and schema: built per call

    @property
    def reads_embeddings(self) -> bool:
        return bool(getattr(self.detector, "reads_embeddings", False))

    @property
    def slow(self) -> bool:
        """Milliseconds or more per text (a MiniLM pass, a model call), not microseconds."""
        return bool(getattr(self.detector, "slow", False))


class GuardEngine:
    """A guard policy version, ready to run. Thread-safe: per-call state lives in verdicts."""

    def __init__(self, spec: GuardPolicySpec, version: int | None = None) -> None:
        self.spec = spec
        self.ref = f"{spec.name}@{version}" if version is not None else f"{spec.name} (built in)"
        self.enforcing = spec.mode == "enforce"
        self._rules = [_Compiled(rule, _build(rule)) for rule in spec.rules]
        self.needs_canary = any(c.rule.detector == LEAKAGE for c in self._rules)
        self.asks_judge = any(c.rule.detector == JUDGE for c in self._rules)
        self._deferrable = {kind: self._deferrable_for(kind) for kind in INPUT_KINDS}

    def _deferrable_for(self, kind: str) -> frozenset[int]:
        """The rules on ``kind`` that may run after the check, beside the upstream call: slow
        ones that only record (``flag``, or any in shadow mode), unless a rule that must run
        first scans with the same detector anyway."""
        rules = list(self._for(kind))
        records = [c for c in rules if c.slow and (c.rule.action == "flag" or not self.enforcing)]
        first = {c.rule.detector for c in rules if c not in records}
        return frozenset(id(c) for c in records if c.rule.detector not in first)

    def _for(self, kind: str) -> Iterator[_Compiled]:
        return (c for c in self._rules if kind in c.rule.content)

    def slow_for(self, kinds: Iterable[str], *, deferring: bool = False) -> bool:
        """Whether a slow rule (a MiniLM pass, a judge's model call) looks at any of
        ``kinds`` (``deferring``: other than those a deferring check leaves out): a caller
        then checks off its event loop."""
        return any(
            c.slow and not (deferring and id(c) in self._deferrable.get(kind, ()))
            for kind in set(kinds)
            for c in self._for(kind)
        )

    def kinds(
        self, messages: list[dict[str, Any]], untrusted_messages: Iterable[int] = ()
    ) -> list[str]:
        """What a policy calls the content of each message: its role's kind, or
        ``untrusted`` for the messages a caller marked so."""
        marked = set(untrusted_messages)
        return [
            "untrusted" if i in marked else KIND_OF_ROLE.get(str(m.get("role")), "user")
            for i, m in enumerate(messages)
        ]

    # -- input -------------------------------------------------------------------------

    def check_input(
        self,
        messages: list[dict[str, Any]],
        untrusted: dict[str, str] | None = None,
        *,
        untrusted_messages: Iterable[int] = (),
        embeddings: CallEmbeddings | None = None,
        defer: bool = False,
    ) -> InputVerdict:
        """Scan every message (and the untrusted texts: a prompt's retrieved-content
        variables, by name) with the rules that look at its kind; redact or pseudonymise in
        the messages that go upstream, when enforcing. ``untrusted_messages``: indices of
        messages the caller marked untrusted (scanned as ``untrusted``, whatever their
        role); ``embeddings``: the call's, when it has some already. ``defer``: leave the
        slow rules that only record to :meth:`check_deferred` (``verdict.deferred``), so that
        a caller can run them beside the upstream call rather than before it."""
        started = time.perf_counter()
        verdict = InputVerdict(messages=list(messages), deferred=[] if defer else None)
        if embeddings is not None:
            verdict.embeddings = embeddings
        if not any(kind in c.rule.content for c in self._rules for kind in INPUT_KINDS):
            verdict.messages = self._with_canary(verdict, messages)
            return verdict
        pseudonymiser = Pseudonymiser()
        kinds = self.kinds(messages, untrusted_messages)
        for index, message in enumerate(messages):
            kind = kinds[index]
            content = message.get("content")
            where = f"messages[{index}]"
            if isinstance(content, str):
                text = self._guard_text(verdict, content, kind, where, pseudonymiser)
                if text is not content:
                    verdict.messages[index] = {**message, "content": text}
            elif isinstance(content, list):
                parts = [
                    self._guard_part(verdict, part, kind, f"{where}.content[{i}]", pseudonymiser)
                    for i, part in enumerate(content)
                ]
                verdict.messages[index] = {**message, "content": parts}
        for name, text in (untrusted or {}).items():
            # Checked where they came from; their rewriting in the rendered prompt is the
            # rendered message's own (the same text, found again there).
            self._guard_text(verdict, text, "untrusted", f"variables.{name}", None)
        if pseudonymiser.used:
            verdict.pseudonymiser = pseudonymiser
        verdict.messages = self._with_canary(verdict, verdict.messages)
        verdict.elapsed_ms = (time.perf_counter() - started) * 1000
        return verdict

    def _guard_part(
        self,
        verdict: Verdict,
        part: Any,
        kind: str,
        where: str,
        pseudonymiser: Pseudonymiser | None,
    ) -> Any:
        """A content part after the rules: a text part's text guarded, a media part as it
        is (no detector reads images or audio), and any other shape (text nested where a
        detector cannot read it, a part type it does not know) recorded as uninspected, so
        that a blocking rule's ``on_error`` applies rather than the text going up unread."""
        kind_of_part = part.get("type", "text") if isinstance(part, dict) else None
        if isinstance(part, dict) and isinstance(kind_of_part, str):
            field = TEXT_FIELD_OF_PART.get(kind_of_part)
            text = part.get(field) if field is not None else None
            if field is not None and isinstance(text, str):
                guarded = self._guard_text(verdict, text, kind, where, pseudonymiser)
                return {**part, field: guarded}
            if kind_of_part in MEDIA_PARTS:
                return part
        for compiled in self._for(kind):
            self._uninspected(verdict, compiled.rule, where, "uninspectable_content")
        return part

    def check_deferred(
        self, deferred: list[tuple[str, str, str]], embeddings: CallEmbeddings
    ) -> Verdict:
        """The findings of the rules a deferring :meth:`check_input` left out (they only
        record, so nothing is rewritten or blocked); ``elapsed_ms`` stays 0: the time was
        spent beside the upstream call, not before it."""
        verdict = Verdict(embeddings=embeddings)
        for text, kind, where in deferred:
            self._guard_text(verdict, text, kind, where, None, deferred_only=True)
        return verdict

    def _with_canary(
        self, verdict: InputVerdict, messages: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        if not (self.needs_canary and self.enforcing):
            return messages
        verdict.canary = new_canary()
        placed: list[dict[str, Any]] = with_canary(messages, verdict.canary)
        return placed

    def _guard_text(
        self,
        verdict: Verdict,
        text: str,
        kind: str,
        where: str,
        pseudonymiser: Pseudonymiser | None,
        per_call: dict[str, Detector] | None = None,
        *,
        deferred_only: bool = False,
    ) -> str:
        """``text`` after the rules for ``kind``: the findings recorded on ``verdict``, spans
        redacted or pseudonymised when enforcing (the same object when nothing changed).
        ``per_call``: the detectors a call brings (its canary, its schema), by name.
        ``deferred_only``: run only the rules a deferring check left out."""
        spans: list[tuple[Finding, str]] = []
        # Rules sharing a detector (block above one threshold, flag above another) share
        # its scan of this text.
        scanned: dict[int, list[Finding]] = {}
        deferrable = self._deferrable.get(kind, frozenset())
        deferring = verdict.deferred is not None and bool(deferrable)
        if deferring and verdict.deferred is not None:
            verdict.deferred.append((text, kind, where))
        for compiled in self._for(kind):
            if (deferring or deferred_only) and (id(compiled) in deferrable) != deferred_only:
                continue
            rule = compiled.rule
            found = self._scan(verdict, compiled, text, kind, where, per_call or {}, scanned)
            if found:
                top = max(finding.score for finding in found)
                verdict.scores[rule.detector] = max(top, verdict.scores.get(rule.detector, 0.0))
            for finding in found:
                if finding.score < rule.threshold or (
                    rule.labels and finding.label not in rule.labels
                ):
                    continue
                self._record(verdict, rule, finding, where)
                if rule.action in ("redact", "pseudonymise") and finding.start is not None:
                    spans.append((finding, rule.action))
        if not spans or not self.enforcing:
            return text
        return _rewrite(text, spans, pseudonymiser)

    def _scan(
        self,
        verdict: Verdict,
        compiled: _Compiled,
        text: str,
        kind: str,
        where: str,
        per_call: dict[str, Detector],
        scanned: dict[int, list[Finding]],
    ) -> list[Finding]:
        rule = compiled.rule
        scanner = compiled.detector or per_call.get(rule.detector)
        if scanner is None:
            return []
        if len(text) > self.spec.max_chars:
            self._uninspected(verdict, rule, where, "over_max_chars")
            return []
        if id(scanner) in scanned:
            return scanned[id(scanner)]
        untrusted = kind in UNTRUSTED_KINDS
        try:
            if compiled.reads_embeddings:
                reader = cast(EmbeddingDetector, scanner)
                found = reader.scan(text, untrusted=untrusted, embeddings=verdict.embeddings)
            else:
                found = scanner.scan(text, untrusted=untrusted)
            scanned[id(scanner)] = found
            return found
        except Unavailable:  # its model is not installed: the same for every text
            self._uninspected(verdict, rule, where, "detector_unavailable")
            return []
        except Exception:  # a detector's bug must not let the content through unseen
            self._uninspected(verdict, rule, where, "detector_error")
            return []

    def _uninspected(self, verdict: Verdict, rule: GuardRule, where: str, why: str) -> None:
        """Content a rule could not inspect gets the policy's ``on_error``, when the rule
        itself would block; otherwise it is flagged."""
        action = self.spec.on_error if rule.action == "block" else "flag"
        self._record(verdict, rule, Finding(rule.detector, "error", why, 1.0), where, action)

    def _record(
        self,
        verdict: Verdict,
        rule: GuardRule,
        finding: Finding,
        where: str,
        action: str | None = None,
    ) -> None:
        taken = GuardAction(
            self.ref,
            rule.detector,
            finding.label,
            finding.score,
            action or rule.action,
            where,
            self.enforcing,
        )
        if taken.action == "flag" and any(
            (a.detector, a.label, a.where) == (taken.detector, taken.label, taken.where)
            for a in verdict.actions
        ):
            return  # a stronger rule already acted on it (a policy that flags below a block)
        verdict.actions.append(taken)
        if taken.action == "block" and self.enforcing and verdict.blocked is None:
            verdict.blocked = taken

    # -- output ------------------------------------------------------------------------

    def check_output(
        self,
        text: str,
        *,
        canary: str | None = None,
        pseudonymiser: Pseudonymiser | None = None,
        schema: dict[str, Any] | None = None,
        reasked: bool = False,
        embeddings: CallEmbeddings | None = None,
    ) -> OutputVerdict:
        """The answer after the output rules (redactions when enforcing), placeholders of
        pseudonymised input restored for the caller. ``schema``: the JSON Schema the answer
        must match; unless ``reasked``, a schema rule with ``reask`` asks for one more try
        (``verdict.reask``) rather than acting."""
        started = time.perf_counter()
        verdict = OutputVerdict()
        if embeddings is not None:
            verdict.embeddings = embeddings
        per_call: dict[str, Detector] = {}
        if canary is not None:
            per_call[LEAKAGE] = CanaryLeak(canary)
        check = SchemaCheck(schema) if schema is not None else None
        if check is not None:
            per_call[SCHEMA] = check
        verdict.stored = self._guard_text(verdict, text, "output", "output", None, per_call)
        reasks = any(c.rule.detector == SCHEMA and c.rule.reask for c in self._for("output"))
        if check and check.error and reasks and not reasked and self.enforcing:
            verdict.reask = check.error
            if verdict.blocked is not None and verdict.blocked.detector == SCHEMA:
                verdict.blocked = None  # decided on the second answer
        restored = pseudonymiser.restore(verdict.stored) if pseudonymiser is not None else None
        verdict.text = verdict.stored if restored is None else restored
        verdict.elapsed_ms = (time.perf_counter() - started) * 1000
        return verdict

    @property
    def guards_output(self) -> bool:
        return any(True for _ in self._for("output"))

    def output_stream(
        self, *, canary: str | None = None, pseudonymiser: Pseudonymiser | None = None
    ) -> OutputStream:
        return OutputStream(self, canary, pseudonymiser)


class _RuleScan:
    """One output rule as the stream scanner's detector: its threshold and labels applied,
    and whether it fired (a blocking rule that fires ends the stream)."""

    def __init__(self, rule: GuardRule, detector: Detector) -> None:
        self.name = detector.name
        self.rule = rule
        self._detector = detector
        self.fired = False
        self.finds_only_loud_text = bool(getattr(detector, "finds_only_loud_text", False))
        self.loud_words: tuple[str, ...] = tuple(getattr(detector, "loud_words", ()))

    def scan(self, text: str, *, untrusted: bool = False) -> list[Finding]:
        rule = self.rule
        found = [
            finding
            for finding in self._detector.scan(text)
            if finding.score >= rule.threshold and (not rule.labels or finding.label in rule.labels)
        ]
        self.fired = self.fired or bool(found)
        return found


class OutputStream:
    """The output rules over a streamed answer, chunk by chunk.

    Redacting and blocking rules run in a :class:`StreamScanner`, which holds back
    :data:`STREAM_WINDOW` characters so that what they look for is seen whole even when it
    arrives cut across chunks (a key, an email, a markdown image, the canary). When every
    such rule's detector finds only loud text (digits, symbols, long runs), quiet words leave
    at once and only what follows a loud word waits: prose starts streaming after its first
    word rather than after 160 characters. A blocking rule that
    fires (the canary: the system prompt is being repeated) ends the stream before the text
    that fired it is sent. Placeholders of pseudonymised input are restored last, for the
    caller. What was found is recorded once the stream ends (:meth:`verdict`), from the
    whole answer, as for an answer sent whole.
    """

    def __init__(
        self, engine: GuardEngine, canary: str | None, pseudonymiser: Pseudonymiser | None
    ) -> None:
        self._engine = engine
        self._canary = canary
        self._enforcing = engine.enforcing
        self._rules = [
            _RuleScan(c.rule, c.detector or CanaryLeak(canary or ""))
            for c in engine._for("output")
            if c.rule.action in ("redact", "block") and (c.detector is not None or canary)
        ]
        # Quiet words may leave at once when no rule could find anything in them.
        self._scanner = (
            StreamScanner(
                self._rules,
                window=STREAM_WINDOW,
                early=all(r.finds_only_loud_text for r in self._rules),
                loud_words=sorted({w for r in self._rules for w in r.loud_words}),
            )
            if self._rules and self._enforcing
            else None
        )
        self._restorer = pseudonymiser.restorer() if pseudonymiser is not None else None
        self._received: list[str] = []
        self.blocked = False
        self.finished = False

    def feed(self, chunk: str) -> str:
        """The text now safe to send ("" while held back, or once blocked)."""
        self._received.append(chunk)
        if self.blocked:
            return ""
        out = self._scanner.feed(chunk) if self._scanner is not None else chunk
        return self._after(out)

    def flush(self) -> str:
        """The rest, at the end of the stream."""
        self.finished = True
        if self.blocked:
            return ""
        out = self._scanner.flush() if self._scanner is not None else ""
        out = self._after(out)
        if self._restorer is not None and not self.blocked:
            out += self._restorer.flush()
        return out

    def _after(self, out: str) -> str:
        if any(r.fired and r.rule.action == "block" for r in self._rules):
            self.blocked = True
            return ""
        return self._restorer.feed(out) if self._restorer is not None else out

    def verdict(self) -> OutputVerdict:
        """What the output rules found in the whole answer (recorded, not applied again)."""
        return self._engine.check_output("".join(self._received), canary=self._canary)


def _build(rule: GuardRule) -> Detector | None:
    if rule.detector in PER_CALL:
        return None
    if rule.detector == EXFILTRATION:
        return ExfiltrationDetector(rule.allowed_hosts)
    if rule.detector == JUDGE:
        assert rule.model is not None  # the policy schema requires it
        return InjectionJudge(rule.model, rule.timeout_s)
    return detector(rule.detector)


def _rewrite(
    text: str, spans: list[tuple[Finding, str]], pseudonymiser: Pseudonymiser | None
) -> str:
    """``text`` with each span replaced, right to left so that earlier offsets hold; of
    overlapping spans the first to start (then the longest) wins."""
    chosen: list[tuple[int, int, Finding, str]] = []
    for finding, action in sorted(
        spans, key=lambda s: (s[0].start or 0, -((s[0].end or 0) - (s[0].start or 0)))
    ):
        start, end = finding.start or 0, finding.end or 0
        if chosen and start < chosen[-1][1]:
            continue
        chosen.append((start, end, finding, action))
    original = text
    for start, end, finding, action in reversed(chosen):
        if action == "pseudonymise" and pseudonymiser is not None:
            replacement = pseudonymiser.placeholder(text[start:end], finding.label, avoid=original)
        else:
            replacement = mask_token(finding.label)
        text = text[:start] + replacement + text[end:]
    return text
