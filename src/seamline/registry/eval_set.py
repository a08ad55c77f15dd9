"""The ``eval_set`` artefact: cases with their inputs, references and criteria, and the
scorers that grade answers to them; versioned, released and rolled back like a prompt.

```yaml
kind: eval_set
name: support-qa
scorers:                       # checked by name when a run builds them (seamline.evals)
  - name: contains
  - name: json_schema
    schema: {type: object, required: [answer]}
cases:
  - id: refund-window          # defaults to case-1, case-2, ... in order
    variables: {question: "How long do refunds take?"}
    reference: "Refunds reach the card within 14 days."
    contexts: ["[kb-7] Refunds are issued within 14 days."]
    tags: [refunds]
    criteria: {contains: {value: "14 days"}}
cases_file: more-cases.jsonl   # in a file: one case per line, appended to ``cases``
```

A case gives a prompt's ``variables`` or whole chat ``messages`` (or both: the messages
follow the prompt's, as on the gateway). The registry checks the shape; whether a case's
variables fit the prompt it is run against, and whether a scorer exists, is the run's to
say, case by case (an errored case, not a refused push: an eval set outlives prompts).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
CASE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$"
# The most cases one version holds: a run scores every one, and a version is one row.
MAX_CASES = 50_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvalCaseSpec(_Strict):
    id: Annotated[str, Field(pattern=CASE_ID_PATTERN)] | None = None
    variables: dict[str, Any] = Field(default_factory=dict)
    messages: list[dict[str, Any]] | None = None
    reference: str | None = None
    contexts: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    # Per-case scorer settings, by scorer name: {"contains": {"value": "14 days"}}.
    criteria: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_input(self) -> EvalCaseSpec:
        if not self.variables and not self.messages:
            raise ValueError("a case needs variables or messages to send")
        for index, message in enumerate(self.messages or []):
            if not isinstance(message.get("role"), str):
                raise ValueError(f"messages[{index}] needs a role")
        return self


class EvalSetSpec(_Strict):
    kind: Literal["eval_set"] = "eval_set"
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: str = ""
    owner: str | None = None
    scorers: list[dict[str, Any]] = Field(default_factory=list)
    cases: Annotated[list[EvalCaseSpec], Field(min_length=1, max_length=MAX_CASES)]
    tags: list[str] = Field(default_factory=list)
    changelog: str = ""

    @model_validator(mode="before")
    @classmethod
    def _number_cases(cls, data: Any) -> Any:
        """A case without an id gets ``case-N`` by its position: a run's results pair up
        with another run's case by case, by id."""
        if isinstance(data, dict) and isinstance(data.get("cases"), list):
            cases = [
                {**case, "id": f"case-{i + 1}"}
                if isinstance(case, dict) and case.get("id") is None
                else case
                for i, case in enumerate(data["cases"])
            ]
            data = {**data, "cases": cases}
        return data

    @model_validator(mode="after")
    def _unique(self) -> EvalSetSpec:
        seen: set[str | None] = set()
        for case in self.cases:
            if case.id in seen:
                raise ValueError(f"case id {case.id!r} is used twice")
            seen.add(case.id)
        for index, scorer in enumerate(self.scorers):
            if not isinstance(scorer.get("name"), str):
                raise ValueError(f"scorers[{index}] needs a name")
        return self
