"""LLM-as-judge, pointwise: a judge model grades one answer from 1 to 5 on a rubric, with a
one-sentence rationale; reference-guided when the case has a reference answer, grounded
when it has contexts.

The judge's instructions are a registry prompt (``{name: judge, prompt: answer-judge@production}``
in an eval set): versioned, reviewed and gated like any prompt. A run pins the version it
used and records its content in the run's definition, so a verdict can be traced to the
exact instructions that produced it, and a new judge version is a new run, never a silent
change of numbers. Without one, the built-in rubric applies (the bundled ``answer-judge``
prompt), with the eval set's ``criteria`` text. The prompt may declare any of the variables
``question``, ``answer``, ``reference``, ``contexts`` (a list) and ``criteria``; the model
is ``judge:``, else the judge prompt's own.

Self-consistency: ``samples: N`` asks N times at temperature 0.7 (each sample a request of
its own, kept like any answer) and scores their mean; the reason gives every sample, so a
judge that cannot make up its mind shows it. The score is (grade - 1) / 4: 1.0 for a 5.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from seamline.core import canonical
from seamline.core.errors import InvalidInput
from seamline.evals.judging import ask_json_messages
from seamline.evals.scoring import Answer, Case, Score, ScoreError, question_of
from seamline.registry.prompt import Prompt

LOWEST, HIGHEST = 1, 5
PASS_GRADE = 4  # the calibration set's "pass": correct, at most a minor omission
SAMPLE_TEMPERATURE = 0.7
_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": LOWEST, "maximum": HIGHEST},
        "rationale": {"type": "string"},
    },
    "required": ["score", "rationale"],
    "additionalProperties": False,
}
# The built-in judge prompt is the bundled ``answer-judge`` example: one text, which
# ``seamline up`` also pushes to the registry for teams to edit and calibrate.
BUILT_IN_PROMPT: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parents[2] / "examples" / "prompts" / "answer-judge.yaml").read_text("utf-8")
)


class Rubric:
    name = "judge"

    def __init__(
        self,
        judge: str | None = None,
        criteria: str = "",
        prompt: str | None = None,
        prompt_hash: str | None = None,
        prompt_content: dict[str, Any] | None = None,
        samples: int = 1,
        min_agreement: float | None = None,  # read by the run's gate, not here
    ) -> None:
        if prompt is not None and prompt_content is None:
            raise ValueError(f"judge prompt {prompt!r} is not resolved (a run resolves it)")
        content = prompt_content or BUILT_IN_PROMPT
        self.prompt = Prompt.from_content(
            content, version=0, content_hash=prompt_hash or canonical.content_hash(content)
        )
        model = judge or self.prompt.model_name
        if not model:
            raise ValueError("judge: name the judge model (judge: MODEL) or a prompt naming one")
        self.model: str = model
        if not 1 <= samples <= 20:
            raise ValueError("judge: samples must be 1 to 20")
        self.criteria = criteria
        self.samples = samples

    def grade(self, case: Case, answer: Answer) -> tuple[list[int], str]:
        """The judge's grades (one per sample) and its first rationale."""
        declared = {v.name for v in self.prompt.spec.variables}
        known: dict[str, Callable[[], Any]] = {  # only what the prompt asks for is needed
            "question": lambda: question_of(case, self.name),
            "answer": lambda: answer.text,
            "reference": lambda: case.reference,
            "contexts": lambda: list(answer.contexts or case.contexts),
            "criteria": lambda: str(
                case.criteria.get(self.name, {}).get("criteria", self.criteria)
            ),
        }
        try:
            rendered = self.prompt.render(**{k: get() for k, get in known.items() if k in declared})
        except InvalidInput as exc:
            raise ScoreError(f"judge prompt: {exc.message}") from None
        grades, rationale = [], ""
        for sample in range(self.samples):
            extra = {"temperature": SAMPLE_TEMPERATURE, "seed": sample} if self.samples > 1 else {}
            verdict = ask_json_messages(self.model, rendered.messages, _SCHEMA, **extra)
            grade = verdict.get("score")
            if isinstance(grade, bool) or not isinstance(grade, int):
                raise ScoreError(f"{self.model} gave no integer score: {verdict!r:.80}")
            if not LOWEST <= grade <= HIGHEST:
                raise ScoreError(f"{self.model} gave {grade}, outside {LOWEST}-{HIGHEST}")
            grades.append(grade)
            rationale = rationale or str(verdict.get("rationale") or "")
        return grades, rationale

    def score(self, case: Case, answer: Answer) -> Score:
        grades, rationale = self.grade(case, answer)
        mean = sum(grades) / len(grades)
        spread = f" (samples: {', '.join(map(str, grades))})" if len(grades) > 1 else ""
        return Score((mean - LOWEST) / (HIGHEST - LOWEST), f"{mean:g}/5: {rationale}{spread}")
