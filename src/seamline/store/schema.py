"""Plain SQL tables a user can query with any SQLite or PostgreSQL tool.

Changing a table here needs a new Alembic migration in ``store/migrations/versions``;
``tests/store/test_migrations.py`` fails while the two disagree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# Explicit constraint names keep migrations identical on SQLite and PostgreSQL.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Timestamp = DateTime(timezone=True)

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("content_logging", String(16), nullable=False, server_default="full"),
    Column("created_at", Timestamp, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", Timestamp, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("project_id", ForeignKey("projects.id"), nullable=False, index=True),
    Column("user_id", ForeignKey("users.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("prefix", String(40), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False),
    Column("models", JSON),  # model names (shell patterns) the key may call; NULL: any
    Column("created_at", Timestamp, nullable=False),
    Column("revoked_at", Timestamp),
)

artefacts = Table(
    "artefacts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", ForeignKey("projects.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    UniqueConstraint("project_id", "kind", "name", name="uq_artefacts_project_kind_name"),
)

artefact_versions = Table(
    "artefact_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("artefact_id", ForeignKey("artefacts.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("content", JSON, nullable=False),
    Column("author", String(200), nullable=False),
    Column("message", Text, nullable=False, server_default=""),
    Column("parent_id", ForeignKey("artefact_versions.id")),
    Column("created_at", Timestamp, nullable=False),
    UniqueConstraint("artefact_id", "number", name="uq_artefact_versions_artefact_number"),
)

lineage = Table(
    "lineage",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version_id", ForeignKey("artefact_versions.id"), nullable=False, index=True),
    Column("relation", String(64), nullable=False),
    Column("target_kind", String(32), nullable=False),
    Column("target_name", String(200), nullable=False),
    Column("target_version_id", ForeignKey("artefact_versions.id")),
)

aliases = Table(
    "aliases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("artefact_id", ForeignKey("artefacts.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("version_id", ForeignKey("artefact_versions.id"), nullable=False),
    Column("weight", Integer),
    Column("revision", Integer, nullable=False),
    Column("updated_by", String(200), nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    UniqueConstraint("artefact_id", "name", name="uq_aliases_artefact_name"),
)

alias_history = Table(
    "alias_history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("alias_id", ForeignKey("aliases.id"), nullable=False, index=True),
    Column("revision", Integer, nullable=False),
    Column("action", String(16), nullable=False),  # "move" or "rollback"
    Column("from_version_id", ForeignKey("artefact_versions.id")),
    Column("to_version_id", ForeignKey("artefact_versions.id"), nullable=False),
    Column("weight", Integer),
    Column("actor", String(200), nullable=False),
    Column("reason", Text),
    Column("override", Boolean, nullable=False, server_default="0"),
    Column("at", Timestamp, nullable=False),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version_id", ForeignKey("artefact_versions.id"), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("approver", String(200), nullable=False),
    Column("comment", Text),
    Column("created_at", Timestamp, nullable=False),
    UniqueConstraint("version_id", "alias", "approver", name="uq_approvals_version_alias_approver"),
)

alias_policies = Table(
    "alias_policies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", ForeignKey("projects.id"), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("allowed_scopes", JSON, nullable=False),
    Column("required_approvals", Integer, nullable=False),
    Column("approver_must_differ", Boolean, nullable=False),
    Column("require_gate", Boolean, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    UniqueConstraint("project_id", "alias", name="uq_alias_policies_project_alias"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", ForeignKey("projects.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("at", Timestamp, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(400), nullable=False),
    Column("details", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("project_id", "seq", name="uq_audit_log_project_seq"),
)

# One row per accepted gateway call (telemetry.event.CallEvent). Written in batches by a
# background writer; ``request_id`` is unique so that replaying a spill file is idempotent.
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("request_id", String(40), nullable=False, unique=True),
    Column("trace_id", String(32), nullable=False),
    Column("time", Timestamp, nullable=False),
    Column("project_id", Integer, index=True),
    Column("project", String(100)),
    Column("api_key_id", String(40)),
    Column("user_id", String(200)),
    Column("session_id", String(200)),
    Column("use_case", String(200)),
    Column("route", String(100), nullable=False),
    Column("prompt_name", String(200)),
    Column("prompt_version", Integer),
    Column("prompt_alias", String(64)),
    Column("arm", String(16)),
    Column("parent_request_id", String(40)),
    Column("model_requested", String(200)),
    Column("model_used", String(200)),
    Column("provider", String(64)),
    Column("replica", String(200)),
    Column("upstream_model", String(200)),
    Column("system_fingerprint", String(100)),
    Column("attempts", Integer, nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("cached_tokens", Integer, nullable=False),
    Column("tokens_estimated", Boolean, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("ttft_ms", Float),
    Column("latency_ms", Float, nullable=False),
    Column("retrieval_ms", Float),
    Column("guard_ms", Float),
    Column("upstream_ms", Float),
    Column("index_version", String(200)),
    Column("chunk_ids", JSON),
    Column("rag_chunks_used", Integer),
    Column("cache_hit", Boolean, nullable=False),
    Column("guard_actions", JSON),
    Column("guard_scores", JSON),
    Column("safety_pass", Boolean),
    Column("status", String(16), nullable=False),
    Column("http_status", Integer, nullable=False),
    Column("error_type", String(64)),
    Column("error_message", Text),
    Column("finish_reason", String(32)),
    Column("stream", Boolean, nullable=False),
    Column("request_content", JSON),
    Column("response_content", JSON),
    Column("prompt_variables", JSON),
    Column("chunk_scores", JSON),
    Index("ix_events_project_time", "project_id", "time"),
    # An operator's reports span every project: their partial hours read events by time.
    Index("ix_events_time", "time"),
)

# Budget counters shared by gateway workers that have no Redis (gateway.budgets). One row per
# budget and period (``key`` names both) holds the spend in integer nano-dollars; one row per
# call in flight holds its reservation until the call settles or ``expires_at`` passes.
budget_counters = Table(
    "budget_counters",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("spent_nano", BigInteger, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

budget_holds = Table(
    "budget_holds",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("key", String(200), nullable=False, index=True),
    Column("amount_nano", BigInteger, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
)

# Eval runs' model and judge answers, by the content of the request that produced them
# (``evals.cache``): a re-run reads them instead of calling again, and so costs nothing and
# scores the same answers. Per project: answers hold what a project's cases asked.
eval_outputs = Table(
    "eval_outputs",
    metadata,
    Column("project_id", ForeignKey("projects.id"), primary_key=True),
    Column("request_hash", String(64), primary_key=True),
    Column("model", String(200), nullable=False),
    Column("answer", JSON, nullable=False),
    Column("created_at", Timestamp, nullable=False),
)

# Eval runs (``evals.runs``): what was run (the prompt, model and eval-set versions, the
# scorers, judges and gate conditions, in ``definition``), how it ended, and the gate report.
# The ``production`` gate reads the latest finished run of a version (``registry.gate``).
eval_runs = Table(
    "eval_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("project_id", ForeignKey("projects.id"), nullable=False),
    Column("prompt_name", String(200), nullable=False),
    Column("prompt_version", Integer, nullable=False),
    Column("prompt_hash", String(64), nullable=False),
    Column("model", String(200), nullable=False),
    Column("eval_set_name", String(200), nullable=False),
    Column("eval_set_version", Integer, nullable=False),
    Column("baseline_run_id", String(40)),
    Column("status", String(16), nullable=False),  # running, finished, interrupted
    Column("passed", Boolean),
    Column("definition", JSON, nullable=False),
    Column("report", JSON),
    Column("cases_total", Integer, nullable=False),
    Column("cases_errored", Integer),
    Column("cost_usd", Float, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("finished_at", Timestamp),
    Index("ix_eval_runs_prompt", "project_id", "prompt_name", "prompt_version"),
)

# One row per case of a run, written as the case finishes: an interrupted run resumes from
# what is here. ``error`` is the whole case's (the model call failed, a variable is missing);
# ``metric_errors`` a scorer's that could not score it.
eval_run_cases = Table(
    "eval_run_cases",
    metadata,
    Column("run_id", ForeignKey("eval_runs.id"), primary_key=True),
    Column("case_id", String(200), primary_key=True),
    Column("scores", JSON, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("metric_errors", JSON, nullable=False),
    Column("error", Text),
    Column("output", Text),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("cost_usd", Float),
    Column("latency_ms", Float),
    Column("kept", Boolean, nullable=False),
    Column("created_at", Timestamp, nullable=False),
)

# Judge calibrations (``evals.calibration``): a judge prompt version and model against
# labelled items; a gate can require the judge it uses to agree with labels well enough.
judge_calibrations = Table(
    "judge_calibrations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("project_id", ForeignKey("projects.id"), nullable=False),
    Column("judge_prompt", String(200), nullable=False),  # NAME@VERSION
    Column("judge_hash", String(64), nullable=False),
    Column("model", String(200), nullable=False),
    Column("labels", String(300), nullable=False),  # the labels' file name
    Column("labels_hash", String(64), nullable=False),
    Column("items", Integer, nullable=False),
    Column("errored", Integer, nullable=False),
    Column("agreement", JSON, nullable=False),  # kappa and spearman, each with its interval
    Column("created_by", String(200), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Index("ix_judge_calibrations_judge", "project_id", "judge_hash"),
)

# Live RAG calls scored off the request path (``rag.online``): the scores and the stage
# blamed (retrieval, freshness, integration, unknown, or ok), with the evidence.
rag_assessments = Table(
    "rag_assessments",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("project_id", ForeignKey("projects.id"), nullable=False),
    Column("time", Timestamp, nullable=False),  # the call's
    Column("route", String(100), nullable=False),
    Column("prompt", String(200)),  # NAME@VERSION
    Column("index_version", String(200), nullable=False),
    Column("attribution", String(16), nullable=False),
    Column("scores", JSON, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("scored_at", Timestamp, nullable=False),
    Index("ix_rag_assessments_project_time", "project_id", "time"),
)

# What users said of calls (``monitoring.feedback``): one row per call or session, user and
# metric (sent again, it is updated); ``target`` is ``request:ID`` or ``session:ID``.
feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", ForeignKey("projects.id"), nullable=False),
    Column("target", String(220), nullable=False),
    Column("request_id", String(40)),
    Column("session_id", String(200)),
    Column("user_key", String(200), nullable=False),  # "" when no user was named
    Column("metric", String(100), nullable=False),
    Column("value", Float, nullable=False),
    Column("comment", Text),
    Column("tags", JSON, nullable=False),
    Column("source", String(16), nullable=False),  # api, sdk or cli
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    UniqueConstraint("project_id", "target", "user_key", "metric", name="uq_feedback_key"),
    Index("ix_feedback_project_request", "project_id", "request_id"),
)

# Each call's input (and answer) embedded off the request path, for drift
# (``monitoring.embeddings``): unit MiniLM vectors stored as int8 (384 bytes each).
call_embeddings = Table(
    "call_embeddings",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("project_id", ForeignKey("projects.id"), nullable=False),
    Column("time", Timestamp, nullable=False),
    Column("prompt_name", String(200)),
    Column("prompt_version", Integer),
    Column("use_case", String(200)),
    Column("api_key_id", String(40)),
    Column("model", String(100), nullable=False),  # the embedding model's version
    Column("input_vector", LargeBinary, nullable=False),
    Column("output_vector", LargeBinary),
    Index("ix_call_embeddings_project_time", "project_id", "time"),
    # The drift report's sample: a group's first calls by (random) request id in a window.
    Index(
        "ix_call_embeddings_sample",
        "project_id",
        "model",
        "prompt_name",
        "use_case",
        "request_id",
        "time",
    ),
)

# Alerts (``monitoring.alerts``): what fired, when, the evidence and sample calls, and how
# delivering it went.
alerts = Table(
    "alerts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("rule", String(200), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("project_id", ForeignKey("projects.id")),
    Column("subject", String(300), nullable=False),  # what it is about: a tenant, a route
    Column("fired_at", Timestamp, nullable=False),
    Column("value", Float),
    Column("threshold", Float),
    Column("message", Text, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("request_ids", JSON, nullable=False),
    Column("delivery", JSON, nullable=False),
    # rule, project, subject and cooldown slot: of the workers checking at once, one keeps
    # (and posts) the alert, the others' inserts conflict.
    Column("claim", String(700), nullable=False, unique=True),
    Index("ix_alerts_rule_time", "rule", "subject", "fired_at"),
)

# The rollups' latency histogram: calls at most each bound (ms), and over the last.
LATENCY_BUCKETS_MS = (25, 50, 100, 250, 500, 1000, 2000, 4000, 8000, 15000, 30000, 60000)
LATENCY_COLUMNS = (*(f"latency_le_{bound}" for bound in LATENCY_BUCKETS_MS), "latency_over")

# Hourly sums of the events (``telemetry.rollups``), kept by the event writer in the same
# transaction as the events: what cost reports and dashboards read as events grow.
event_rollups = Table(
    "event_rollups",
    metadata,
    Column("hour", Timestamp, primary_key=True),
    Column("project_id", Integer, primary_key=True),  # 0: a call refused before its key
    Column("api_key_id", String(40), primary_key=True),
    Column("route", String(100), primary_key=True),
    Column("prompt_name", String(200), primary_key=True),
    Column("prompt_version", Integer, primary_key=True),
    Column("model_used", String(200), primary_key=True),
    Column("use_case", String(200), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("calls", Integer, nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("latency_ms_sum", Float, nullable=False),
    Column("cache_hits", Integer, nullable=False),
    # How many calls took at most each bound (and above the last): the hour's latency
    # percentiles come from these, as Prometheus's come from its histograms.
    *(Column(name, Integer, nullable=False, server_default="0") for name in LATENCY_COLUMNS),
    Index("ix_event_rollups_project_hour", "project_id", "hour"),
)

# The dashboard's sign-ins: a session per browser, bound to the API key signed in with (a
# revoked key ends its sessions). Only a hash of the cookie's token is kept, as for keys.
ui_sessions = Table(
    "ui_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("key_hash", String(64), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
)

# Live calls scored off the request path by the eval harness's scorers (``monitoring.
# quality``): one row per call, metric and source, attached to the call like feedback.
call_scores = Table(
    "call_scores",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("metric", String(100), primary_key=True),
    Column("source", String(16), primary_key=True),  # online
    Column("project_id", ForeignKey("projects.id"), nullable=False),
    Column("time", Timestamp, nullable=False),  # the call's
    Column("prompt_name", String(200)),
    Column("prompt_version", Integer),
    Column("arm", String(16)),
    Column("value", Float, nullable=False),
    Column("reason", Text),
    Index("ix_call_scores_project_time", "project_id", "time"),
)
