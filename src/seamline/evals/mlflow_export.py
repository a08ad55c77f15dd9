"""Eval runs logged to MLflow (the ``seamline[mlflow]`` extra), for teams whose experiments
already live there: one MLflow run per seamline run, in an experiment of the team's choice.

* params: the prompt version and content hash, the model, the eval-set version, the judges,
  the seamline run and its baseline run;
* metrics: each metric's mean with the bounds of its 95% interval (``contains``,
  ``contains.low``, ``contains.high``) and, against a baseline, the paired difference with
  its interval and ``p_worse``; ``gate_passed`` (1 or 0), ``cases_errored``, ``cost_usd``;
* artifacts: the markdown summary and the whole run as JSON.

MLflow is imported only here, and only when asked for.
"""

from __future__ import annotations

import json
from typing import Any

from seamline.core.errors import InvalidInput
from seamline.evals import summary
from seamline.evals.evaluation import Outcome

EXPERIMENT = "seamline-evals"


def mlflow_metrics(outcome: Outcome) -> dict[str, float]:
    metrics: dict[str, float] = {
        "gate_passed": float(outcome.report.passed),
        "cases_errored": float(outcome.run.cases_errored or 0),
        "cost_usd": outcome.run.cost_usd,
    }
    for item in outcome.report.metrics:
        c = item.candidate
        metrics.update({item.metric: c.estimate, f"{item.metric}.low": c.low})
        metrics[f"{item.metric}.high"] = c.high
        if item.comparison is not None:
            d = item.comparison.difference
            metrics[f"{item.metric}.difference"] = d.estimate
            metrics[f"{item.metric}.difference.low"] = d.low
            metrics[f"{item.metric}.difference.high"] = d.high
            metrics[f"{item.metric}.p_worse"] = item.comparison.p_worse
    return metrics


def mlflow_params(outcome: Outcome) -> dict[str, str]:
    run = outcome.run
    return {
        "prompt": run.subject.prompt_ref,
        "prompt_hash": run.subject.prompt_hash,
        "model": run.subject.model,
        "eval_set": run.subject.eval_set_ref,
        "judges": ",".join(run.definition.get("judges") or []) or "none",
        "seamline_run": run.id,
        "baseline_run": outcome.baseline.id if outcome.baseline else "none",
    }


def log_run(outcome: Outcome, tracking_uri: str, experiment: str = EXPERIMENT) -> str:
    """Log ``outcome`` as a finished MLflow run; its MLflow run id."""
    try:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise InvalidInput(
            "MLflow is not installed: pip install 'seamline[mlflow]'", code="mlflow_missing"
        ) from None
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run = outcome.run
    created = client.create_run(
        experiment_id,
        run_name=f"{run.subject.prompt_ref} on {run.subject.eval_set_ref}",
        tags={"seamline.run": run.id, "seamline.passed": str(outcome.report.passed).lower()},
    )
    mlflow_run = created.info.run_id
    at = int(run.created_at.timestamp() * 1000)
    client.log_batch(
        mlflow_run,
        metrics=[Metric(k, v, at, 0) for k, v in mlflow_metrics(outcome).items()],
        params=[Param(k, v) for k, v in mlflow_params(outcome).items()],
        tags=[RunTag("seamline.prompt", run.subject.prompt_ref)],
    )
    client.log_text(mlflow_run, summary.markdown(outcome), "seamline-report.md")
    record: dict[str, Any] = summary.record(outcome)
    client.log_text(mlflow_run, json.dumps(record, indent=2), "seamline-run.json")
    client.set_terminated(mlflow_run, "FINISHED")
    return str(mlflow_run)
