"""A finished run told to people and to CI: a markdown summary fit for a pull-request
comment, and JUnit XML that CI systems show as tests (each gate condition a test case, each
errored case one too, with its reason).

Both say what was measured against what (the exact prompt, model and eval-set versions, the
baseline run) so that a number in a review can be traced to the run that produced it.
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

from seamline.evals.evaluation import Outcome

MAX_LISTED_ERRORS = 10


def errored(outcome: Outcome) -> list[tuple[str, str]]:
    """Each errored case (or metric of a case) with its reason, by case id."""
    found: list[tuple[str, str]] = []
    for case_id, result in sorted(outcome.cases.items()):
        if result.error:
            found.append((case_id, result.error))
        found.extend((f"{case_id} [{m}]", why) for m, why in sorted(result.metric_errors.items()))
    return found


def markdown(outcome: Outcome) -> str:
    run, report = outcome.run, outcome.report
    verdict = "✅ gate passed" if report.passed else "❌ gate failed"
    lines = [
        f"### seamline evals: {verdict}",
        "",
        f"`{run.subject.prompt_ref}` on `{run.subject.model}`, eval set "
        f"`{run.subject.eval_set_ref}` ({run.cases_total} cases), run `{run.id}`"
        + (
            f", against `{outcome.baseline.subject.prompt_ref}` (run `{outcome.baseline.id}`)"
            if outcome.baseline
            else ""
        ),
        "",
        "| metric | candidate (95% CI) | baseline | difference (95% CI) | p(worse) |",
        "|---|---|---|---|---|",
    ]
    for item in report.metrics:
        c = item.candidate
        row = [f"`{item.metric}`", f"{c.estimate:.3f} [{c.low:.3f}, {c.high:.3f}] n={c.n}"]
        if item.baseline is not None and item.comparison is not None:
            d = item.comparison.difference
            row += [
                f"{item.baseline.estimate:.3f}",
                f"{d.estimate:+.3f} [{d.low:+.3f}, {d.high:+.3f}]",
                f"{item.comparison.p_worse:.3g}",
            ]
        else:
            row += ["", "", ""]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "**Conditions**", ""]
    for condition in report.conditions:
        mark = "✅" if condition.passed else "❌"
        lines.append(f"- {mark} {condition.condition}: {condition.detail}")
    for note in outcome.notes:
        lines.append(f"- note: {note}")
    problems = errored(outcome)
    if problems:
        lines += ["", f"**Errored** ({len(problems)})", ""]
        lines += [f"- `{where}`: {why}" for where, why in problems[:MAX_LISTED_ERRORS]]
        if len(problems) > MAX_LISTED_ERRORS:
            lines.append(f"- … and {len(problems) - MAX_LISTED_ERRORS} more")
    lines += ["", f"Cost of this run: ${run.cost_usd:.4f}"]
    return "\n".join(lines) + "\n"


def junit(outcome: Outcome) -> bytes:
    run, report = outcome.run, outcome.report
    problems = errored(outcome)
    suite = ElementTree.Element(
        "testsuite",
        name=f"seamline evals {run.subject.prompt_ref} on {run.subject.eval_set_ref}",
        tests=str(len(report.conditions) + len(problems)),
        failures=str(sum(1 for c in report.conditions if not c.passed)),
        errors=str(len(problems)),
    )
    properties = ElementTree.SubElement(suite, "properties")
    for name, value in _properties(outcome).items():
        ElementTree.SubElement(properties, "property", name=name, value=value)
    for condition in report.conditions:
        case = ElementTree.SubElement(
            suite, "testcase", classname="seamline.gate", name=condition.condition
        )
        if not condition.passed:
            failure = ElementTree.SubElement(case, "failure", message=condition.detail)
            failure.text = condition.detail
        else:
            ElementTree.SubElement(case, "system-out").text = condition.detail
    for where, why in problems:
        case = ElementTree.SubElement(suite, "testcase", classname="seamline.case", name=where)
        ElementTree.SubElement(case, "error", message=why).text = why
    written: bytes = ElementTree.tostring(suite, encoding="utf-8", xml_declaration=True)
    return written


def record(outcome: Outcome) -> dict[str, Any]:
    """The run as JSON: its versions, the report, the errored cases and the notes."""
    return {
        "run": outcome.run.as_record(),
        "baseline_run": outcome.baseline.as_record() if outcome.baseline else None,
        **outcome.report.as_record(),
        "errored": [{"case": where, "reason": why} for where, why in errored(outcome)],
        "notes": outcome.notes,
    }


def _properties(outcome: Outcome) -> dict[str, str]:
    run = outcome.run
    found = {
        "run": run.id,
        "prompt": run.subject.prompt_ref,
        "prompt_hash": run.subject.prompt_hash,
        "model": run.subject.model,
        "eval_set": run.subject.eval_set_ref,
        "judges": ",".join(run.definition.get("judges") or []),
        "cost_usd": f"{run.cost_usd:.6f}",
    }
    if outcome.baseline is not None:
        found["baseline_run"] = outcome.baseline.id
    return found
