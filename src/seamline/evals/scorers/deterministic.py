"""Scorers that need no model: the answer's text, JSON, numbers, size, cost, latency and
citations against what the case expects. Each scores 1.0 or 0.0 (citation coverage: the
share of sentences cited), with the reason.

What a scorer checks comes from its settings in the eval set, and a case may override them
in its ``criteria`` (``{"contains": {"value": "Paris"}}``); without either, the case's
reference answer. An answer that is wrong (not JSON, no number in it) scores 0; a case that
cannot be scored (no reference, no cost recorded) raises :class:`ScoreError`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from jsonschema import Draft202012Validator

from seamline.evals.scoring import Answer, Case, Score, ScoreError, reference_of, setting

_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$")
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
CITATION = r"\[(\d+)\]"


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def _verdict(ok: bool, reason: str) -> Score:
    return Score(1.0 if ok else 0.0, reason)


def _json(text: str) -> tuple[Any, str | None]:
    """The answer as JSON (a markdown fence around it allowed), or the parse error."""
    try:
        return json.loads(_FENCE.sub("", text)), None
    except json.JSONDecodeError as error:
        return None, f"not JSON: {error.msg} at line {error.lineno} column {error.colno}"


class Exact:
    name = "exact"

    def __init__(self, normalise: bool = True) -> None:
        self.normalise = normalise

    def score(self, case: Case, answer: Answer) -> Score:
        expected = setting(case, self.name, "value", None) or reference_of(case, self.name)
        same = (
            _normal(answer.text) == _normal(expected) if self.normalise else answer.text == expected
        )
        return _verdict(same, "matches the reference" if same else "differs from the reference")


class Contains:
    name = "contains"

    def __init__(
        self, value: str | list[str] | None = None, mode: str = "all", ignore_case: bool = True
    ) -> None:
        if mode not in ("all", "any"):
            raise ValueError("mode must be 'all' or 'any'")
        self.value, self.mode, self.ignore_case = value, mode, ignore_case

    def score(self, case: Case, answer: Answer) -> Score:
        wanted = setting(case, self.name, "value", self.value) or reference_of(case, self.name)
        needles = [wanted] if isinstance(wanted, str) else [str(v) for v in wanted]
        text = answer.text.casefold() if self.ignore_case else answer.text
        missing = [n for n in needles if (n.casefold() if self.ignore_case else n) not in text]
        ok = not missing if self.mode == "all" else len(missing) < len(needles)
        return _verdict(ok, f"missing {missing}" if missing else "all present")


class Regex:
    name = "regex"

    def __init__(self, pattern: str, ignore_case: bool = False) -> None:
        try:
            self.pattern = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        except re.error as error:
            raise ValueError(f"pattern {pattern!r} is not a regular expression: {error}") from None

    def score(self, case: Case, answer: Answer) -> Score:
        found = self.pattern.search(answer.text)
        return _verdict(found is not None, "matches" if found else "no match")


class JsonValid:
    name = "json_valid"

    def score(self, case: Case, answer: Answer) -> Score:
        _, error = _json(answer.text)
        return _verdict(error is None, error or "valid JSON")


class JsonSchema:
    name = "json_schema"

    def __init__(self, schema: dict[str, Any] | None = None) -> None:
        if schema is not None:
            Draft202012Validator.check_schema(schema)
        self.schema = schema

    def score(self, case: Case, answer: Answer) -> Score:
        schema = setting(case, self.name, "schema", self.schema)
        if schema is None:
            raise ScoreError(f"json_schema has no schema for case {case.id!r}")
        value, error = _json(answer.text)
        if error is not None:
            return Score(0.0, error)
        problem = next(iter(Draft202012Validator(schema).iter_errors(value)), None)
        if problem is None:
            return Score(1.0, "matches the schema")
        where = "/".join(str(p) for p in problem.absolute_path) or "(root)"
        return Score(0.0, f"at {where}: {problem.message[:200]}")


class JsonField:
    """A field of the JSON answer (``path``: keys and list indices joined by dots) equals the
    expected value (``expected``, else the case's criteria, else its reference parsed as
    JSON)."""

    name = "json_field"

    def __init__(self, path: str, expected: Any = None) -> None:
        self.path, self.expected = path, expected

    def score(self, case: Case, answer: Answer) -> Score:
        expected = setting(case, self.name, "expected", self.expected)
        if expected is None:
            expected, error = _json(reference_of(case, self.name))
            if error is not None:
                raise ScoreError(f"json_field: the reference of case {case.id!r} is {error}")
        value, error = _json(answer.text)
        if error is not None:
            return Score(0.0, error)
        for key in self.path.split("."):
            if isinstance(value, dict) and key in value:
                value = value[key]
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                return Score(0.0, f"no field {self.path!r}")
        same = value == expected
        return _verdict(same, f"{self.path} {'equals' if same else '!='} {expected!r}")


class Numeric:
    """The first number in the answer within ``tolerance`` of the expected one (absolute, or
    a share of it when ``relative``)."""

    name = "numeric"

    def __init__(
        self, expected: float | None = None, tolerance: float = 0.0, relative: bool = False
    ) -> None:
        if tolerance < 0:
            raise ValueError("tolerance must be >= 0")
        self.expected, self.tolerance, self.relative = expected, tolerance, relative

    def score(self, case: Case, answer: Answer) -> Score:
        expected = setting(case, self.name, "expected", self.expected)
        if expected is None:
            found = _first_number(reference_of(case, self.name))
            if found is None:
                raise ScoreError(f"numeric: the reference of case {case.id!r} holds no number")
            expected = found
        got = _first_number(answer.text)
        if got is None:
            return Score(0.0, "no number in the answer")
        allowed = self.tolerance * abs(float(expected)) if self.relative else self.tolerance
        ok = abs(got - float(expected)) <= allowed
        return _verdict(ok, f"{got:g} against {float(expected):g} (within {allowed:g}: {ok})")


def _first_number(text: str) -> float | None:
    match = _NUMBER.search(text)
    return float(match[0].replace(",", "")) if match else None


class Length:
    name = "length"

    def __init__(
        self,
        max_chars: int | None = None,
        min_chars: int | None = None,
        max_tokens: int | None = None,
    ) -> None:
        if max_chars is None and min_chars is None and max_tokens is None:
            raise ValueError("set max_chars, min_chars or max_tokens")
        self.max_chars, self.min_chars, self.max_tokens = max_chars, min_chars, max_tokens

    def score(self, case: Case, answer: Answer) -> Score:
        size = len(answer.text)
        problems = []
        if self.max_chars is not None and size > self.max_chars:
            problems.append(f"{size} characters > {self.max_chars}")
        if self.min_chars is not None and size < self.min_chars:
            problems.append(f"{size} characters < {self.min_chars}")
        if self.max_tokens is not None:
            if answer.completion_tokens is None:
                raise ScoreError("length: the answer's token count was not recorded")
            if answer.completion_tokens > self.max_tokens:
                problems.append(f"{answer.completion_tokens} tokens > {self.max_tokens}")
        return _verdict(not problems, "; ".join(problems) or "within the budget")


class _Budget:
    """One figure recorded with the answer (``figure``) against a ceiling."""

    name = ""
    figure = ""
    unit = ""

    def __init__(self, ceiling: float) -> None:
        self.ceiling = ceiling

    def score(self, case: Case, answer: Answer) -> Score:
        got = getattr(answer, self.figure)
        if got is None:
            raise ScoreError(f"{self.name}: the answer's {self.name} was not recorded")
        ok = got <= self.ceiling
        return _verdict(ok, f"{got:g} {self.unit} against {self.ceiling:g} {self.unit}")


class CostBudget(_Budget):
    name, figure, unit = "cost", "cost_usd", "USD"

    def __init__(self, max_usd: float) -> None:
        super().__init__(max_usd)


class LatencyBudget(_Budget):
    name, figure, unit = "latency", "latency_ms", "ms"

    def __init__(self, max_ms: float) -> None:
        super().__init__(max_ms)


def _contexts(case: Case, answer: Answer) -> tuple[str, ...]:
    return answer.contexts or case.contexts


class CitationFormat:
    """The answer cites (``[1]``, or ``pattern`` whose group 1 is what is cited), and every
    citation names a context the model was given: by its 1-based position, or by an id the
    context carries in brackets (``[kb-7] Refunds are...``, cited with a pattern such as
    ``\\[(kb-\\d+)\\]``)."""

    name = "citation_format"

    def __init__(self, pattern: str = CITATION) -> None:
        self.pattern = re.compile(pattern)

    def score(self, case: Case, answer: Answer) -> Score:
        cited = self.pattern.findall(answer.text)
        if not cited:
            return Score(0.0, "no citation")
        contexts = _contexts(case, answer)

        def given(citation: str) -> bool:
            if citation.isdigit():
                return 1 <= int(citation) <= len(contexts)
            return any(f"[{citation}]" in context for context in contexts)

        wrong = sorted({c for c in cited if not given(c)})
        return _verdict(
            not wrong,
            f"cites {wrong}, not among the {len(contexts)} contexts given"
            if wrong
            else f"{len(cited)} citations",
        )


class CitationCoverage:
    """The share of the answer's sentences that carry a citation."""

    name = "citation_coverage"

    def __init__(self, pattern: str = CITATION) -> None:
        self.pattern = re.compile(pattern)

    def score(self, case: Case, answer: Answer) -> Score:
        sentences = [s for s in _SENTENCE.findall(answer.text) if any(c.isalnum() for c in s)]
        if not sentences:
            return Score(0.0, "no sentence")
        cited = sum(1 for s in sentences if self.pattern.search(s))
        return Score(cited / len(sentences), f"{cited} of {len(sentences)} sentences cited")
