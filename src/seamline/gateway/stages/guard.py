"""The ``guard in`` and ``guard out`` stages: the call's guard policy on the messages going
upstream and on the answer coming back, with what it found recorded on the event.

Which policy: the one the call's prompt names, else the project's ``default`` guard policy,
else the one seamline ships (``guards/default_policy.yaml``), each at its ``production``
version, else its latest; a release or rollback of a policy is an alias move, seen on the
next request like a prompt's.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from seamline.core.errors import ContentBlocked
from seamline.gateway.stages.request import ChatRequest
from seamline.guards.embeddings import CallEmbeddings
from seamline.guards.engine import GuardAction, GuardEngine, InputVerdict, Verdict
from seamline.guards.judge import JudgeClient, judge_client
from seamline.registry.prompt import Prompt
from seamline.telemetry.event import CallEvent

T = TypeVar("T")
# Above this much text a call's input is scanned on a worker thread: the rules take about a
# millisecond per 10,000 characters, which the event loop should not spend for one call.
INLINE_SCAN_CHARS = 20_000
TOOL_CALLS = "tool_calls"  # the detector name tool-call hygiene records under
JUDGE_USE_CASE = "guard.judge"  # the use case of the events of injection.judge's calls
# Checks running beside their calls, at most: past it a call's slow rules run before it
# goes up, as without deferring. Deferring trades a call's latency for work that outlives
# its answer; unbounded, a stream of calls faster than the detector would pile that work up
# (and the events waiting on it) without end. One per core keeps the pile to what the
# cores can drain, and the calls past it feel the detector's cost, which slows their
# clients down.
BESIDE_LIMIT = os.cpu_count() or 1


# Guard checks run off the event loop on threads of their own: a judge's check waits on its
# thread for a model call that itself needs the default executor (budget and registry reads
# in a worker thread), which a pool shared with it could run out of.
GUARD_THREADS = 32
_pool = ThreadPoolExecutor(max_workers=GUARD_THREADS, thread_name_prefix="seamline-guard")


def off_loop(work: Callable[[], T]) -> asyncio.Future[T]:
    """``work`` on a guard thread, in a copy of this context (the call's judge client)."""
    context = contextvars.copy_context()
    return asyncio.get_running_loop().run_in_executor(_pool, context.run, work)


class _Beside:
    """The checks running beside calls in this process (touched on the event loop only)."""

    running = 0

    @classmethod
    def start(cls, work: Callable[[], Verdict]) -> asyncio.Future[Verdict]:
        cls.running += 1
        future = off_loop(work)
        future.add_done_callback(cls._done)
        return future

    @classmethod
    def _done(cls, _: asyncio.Future[Verdict]) -> None:
        cls.running -= 1


@dataclass
class GuardedCall:
    """A call's policy and what its input check left for the output check."""

    engine: GuardEngine
    verdict: InputVerdict
    tools: frozenset[str]  # the functions the call declared: the only ones it may call
    schema: dict[str, Any] | None = None  # the JSON Schema its answer must match, if any
    actions: list[GuardAction] = field(default_factory=list)
    # The slow rules that only record, running beside the upstream call (``defer``).
    beside: asyncio.Future[Verdict] | None = None

    async def settle(self, event: CallEvent) -> None:
        """Wait for the rules running beside the call and add what they found to the event
        (before it is written)."""
        if self.beside is None:
            return
        beside, self.beside = self.beside, None
        record_guard(event, self, await beside)

    def check_tool(self, name: str, event: CallEvent) -> None:
        """Tool-call hygiene: an answer that calls a function the call did not declare (a
        model steered by injected text inventing ``send_email``) is refused, in enforce
        mode; recorded either way."""
        if name in self.tools:
            return
        action = GuardAction(
            self.engine.ref,
            TOOL_CALLS,
            "undeclared_tool",
            1.0,
            "block",
            "output",
            self.engine.enforcing,
        )
        self.actions.append(action)
        event.guard_actions = [a.as_record() for a in self.actions]
        event.safety_pass = False
        if self.engine.enforcing:
            raise ContentBlocked(
                f"blocked by guard policy {self.engine.ref}: the answer calls "
                f"{name[:64]!r}, a function the call did not declare"
            )

    @property
    def guards_output(self) -> bool:
        return self.engine.guards_output or self.verdict.pseudonymiser is not None


async def guard_input(
    engine: GuardEngine,
    prompt: Prompt | None,
    request: ChatRequest,
    body: dict[str, Any],
    event: CallEvent,
    embeddings: CallEmbeddings | None = None,
    *,
    judge: JudgeClient | None = None,
    defer: bool = False,
) -> GuardedCall:
    """Check the upstream body's messages (and a prompt's untrusted variables) in place:
    rewritten when the policy redacts; :class:`ContentBlocked` when it blocks. What the
    caller marked untrusted is scanned as untrusted content; ``embeddings``: the call's
    already computed (a shadow call reads the live call's); ``judge``: how the policy's
    ``injection.judge`` rules call their model. ``defer``: start the slow rules that only
    record (a learned detector that flags, a shadow policy's) beside the upstream call, to
    be settled (:meth:`GuardedCall.settle`) before the event is written, rather than
    waiting for them before the call goes up."""
    messages = body.get("messages") or []
    variables = request.variables
    untrusted = {
        variable.name: str(variables[variable.name])
        for variable in (prompt.spec.variables if prompt is not None else [])
        if (variable.untrusted or variable.name in request.untrusted_variables)
        and variable.name in variables
    }
    defer = defer and _Beside.running < BESIDE_LIMIT
    # The caller's messages come after the ones a prompt renders.
    offset = len(messages) - len(request.body.get("messages") or [])
    marked = [offset + i for i in request.untrusted_messages]
    size = sum(len(str(m.get("content") or "")) for m in messages) + sum(
        map(len, untrusted.values())
    )
    kinds = engine.kinds(messages, marked) + (["untrusted"] if untrusted else [])
    check = functools.partial(
        engine.check_input,
        messages,
        untrusted,
        untrusted_messages=marked,
        embeddings=embeddings,
        defer=defer,
    )
    # Worker threads run in a copy of this context: they see the judge set here.
    token = judge_client.set(judge)
    try:
        # Off the event loop when it would hold it up for the other calls: a long text, or
        # a slow rule (a MiniLM pass takes milliseconds, a judge's call more).
        if size > INLINE_SCAN_CHARS or engine.slow_for(kinds, deferring=defer):
            verdict = await off_loop(check)
        else:
            verdict = check()
        beside = (
            _Beside.start(
                functools.partial(engine.check_deferred, verdict.deferred, verdict.embeddings)
            )
            if verdict.deferred and verdict.blocked is None
            else None
        )
    finally:
        judge_client.reset(token)
    schema = prompt.spec.output_schema if prompt is not None else None
    guarded = GuardedCall(engine, verdict, declared_tools(body), schema or expected_schema(body))
    guarded.beside = beside
    record_guard(event, guarded, verdict)
    if verdict.blocked is not None:
        raise blocked_error(verdict.blocked)
    body["messages"] = verdict.messages
    return guarded


class SchemaReask(Exception):
    """The answer does not match the call's schema and its policy asks once more."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def guard_answer(
    guarded: GuardedCall, completion: dict[str, Any], event: CallEvent, *, reasked: bool = False
) -> dict[str, Any]:
    """A chat.completion after the output rules: a copy for the caller (placeholders
    restored), while ``completion`` itself keeps what may be stored (redacted, placeholders
    kept); ``completion`` itself when there was nothing to do. :class:`ContentBlocked` when
    a rule blocks the answer or it calls a function the call did not declare."""
    for choice in completion.get("choices") or []:
        for name in called_tools(choice.get("message") or {}):
            guarded.check_tool(name, event)
    if not guarded.guards_output:
        return completion
    answered = {**completion, "choices": []}
    for choice in completion.get("choices") or []:
        message = choice.get("message") or {}
        content = message.get("content")
        if not isinstance(content, str):
            answered["choices"].append(choice)
            continue
        verdict = guarded.engine.check_output(
            content,
            canary=guarded.verdict.canary,
            pseudonymiser=guarded.verdict.pseudonymiser,
            schema=guarded.schema,
            reasked=reasked,
            embeddings=guarded.verdict.embeddings,
        )
        record_guard(event, guarded, verdict)
        if verdict.reask is not None:
            raise SchemaReask(verdict.reask)
        if verdict.blocked is not None:
            raise blocked_error(verdict.blocked)
        message["content"] = verdict.stored
        answered["choices"].append({**choice, "message": {**message, "content": verdict.text}})
    return answered


def expected_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema a chat body's ``response_format`` asks the answer to match."""
    response_format = body.get("response_format")
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    schema = (response_format.get("json_schema") or {}).get("schema")
    return schema if isinstance(schema, dict) else None


def reask_messages(body: dict[str, Any], answer: str, error: str) -> list[dict[str, Any]]:
    """The conversation once more, with the answer and what was wrong with it."""
    return [
        *(body.get("messages") or []),
        {"role": "assistant", "content": answer},
        {
            "role": "user",
            "content": f"That answer is invalid: {error}. Answer again with only JSON that "
            "matches the schema.",
        },
    ]


def declared_tools(body: dict[str, Any]) -> frozenset[str]:
    """The function names a chat body declares (``tools``, or the legacy ``functions``)."""
    tools = [t.get("function") or {} for t in body.get("tools") or [] if isinstance(t, dict)]
    legacy = [f for f in body.get("functions") or [] if isinstance(f, dict)]
    return frozenset(str(f.get("name")) for f in tools + legacy if f.get("name"))


def called_tools(message: dict[str, Any]) -> list[str]:
    """The function names a message (or a streamed delta) calls."""
    calls = [c.get("function") or {} for c in message.get("tool_calls") or []]
    if message.get("function_call"):
        calls.append(message["function_call"])
    return [str(call["name"]) for call in calls if isinstance(call, dict) and call.get("name")]


def record_guard(event: CallEvent, guarded: GuardedCall, verdict: Verdict) -> None:
    """Add a check's findings to the event: the actions, each detector's highest score, the
    time, and ``safety_pass`` (False once any rule found anything, enforced or not)."""
    guarded.actions.extend(verdict.actions)
    event.guard_actions = [action.as_record() for action in guarded.actions]
    if verdict.scores:
        scores = event.guard_scores or {}
        for detector, score in verdict.scores.items():
            scores[detector] = round(max(score, scores.get(detector, 0.0)), 4)
        event.guard_scores = scores
    event.guard_ms = (event.guard_ms or 0.0) + verdict.elapsed_ms
    event.safety_pass = not guarded.actions


def blocked_error(action: GuardAction) -> ContentBlocked:
    """What the caller is told: which policy and detector, never the text it matched."""
    return ContentBlocked(
        f"blocked by guard policy {action.policy}: {action.detector} found "
        f"{action.label} in {action.where}",
        param=action.where if action.where.startswith("messages") else None,
    )


def refusal_answer(model: str, refusal: str) -> dict[str, Any]:
    """The chat.completion a blocked call gets when its policy answers with a refusal
    message rather than an error (``finish_reason`` ``content_filter``, as OpenAI marks an
    answer its filters replaced)."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": refusal},
                "finish_reason": "content_filter",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }
