"""OpenTelemetry spans for gateway calls, with the GenAI semantic-convention attribute names.

Optional (``pip install seamline[otel]``) and off unless an OTLP endpoint is configured. Each
event becomes one span, after the fact, with the call's real start and end times; when the
client sent a W3C ``traceparent`` the span joins the client's trace.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from seamline.telemetry.event import CallEvent

log = logging.getLogger("seamline.otel")
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
OPERATIONS = {"/v1/chat/completions": "chat", "/v1/embeddings": "embeddings"}


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace id, parent span id) from a W3C traceparent header, when it is well formed."""
    if not value:
        return None
    match = TRACEPARENT.match(value.strip().lower())
    if match is None or set(match.group(1)) == {"0"} or set(match.group(2)) == {"0"}:
        return None
    return match.group(1), match.group(2)


def span_attributes(event: CallEvent) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": OPERATIONS.get(event.route, event.route),
        "gen_ai.system": event.provider or "",
        "gen_ai.request.model": event.model_requested or "",
        "gen_ai.response.model": event.model_used or "",
        "gen_ai.usage.input_tokens": event.prompt_tokens,
        "gen_ai.usage.output_tokens": event.completion_tokens,
        "seamline.request_id": event.request_id,
        "seamline.project": event.project or "",
        "seamline.status": event.status,
        "seamline.cost_usd": event.cost_usd,
        "seamline.cache_hit": event.cache_hit,
        "http.response.status_code": event.http_status,
    }
    if event.finish_reason:
        attributes["gen_ai.response.finish_reasons"] = [event.finish_reason]
    if event.prompt_name:
        attributes["seamline.prompt.name"] = event.prompt_name
        attributes["seamline.prompt.version"] = event.prompt_version or 0
        attributes["seamline.prompt.arm"] = event.arm or ""
    if event.error_type:
        attributes["error.type"] = event.error_type
    if event.ttft_ms is not None:
        attributes["seamline.ttft_ms"] = event.ttft_ms
    return attributes


class SpanExporter:
    """Turns events into spans on a tracer provider (OTLP over HTTP unless one is given)."""

    def __init__(
        self,
        endpoint: str | None = None,
        service_name: str = "seamline-gateway",
        provider: Any = None,
    ) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        if provider is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        self.provider = provider
        self.tracer = provider.get_tracer("seamline")

    def export(self, event: CallEvent, parent_span_id: str | None = None) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

        context = None
        if parent_span_id is not None:
            parent = SpanContext(
                int(event.trace_id, 16),
                int(parent_span_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
        end_ns = int(event.time.timestamp() * 1e9 + event.latency_ms * 1e6)
        operation = OPERATIONS.get(event.route, "call")
        span = self.tracer.start_span(
            f"{operation} {event.model_requested or ''}".strip(),
            context=context,
            kind=trace.SpanKind.SERVER,
            start_time=int(event.time.timestamp() * 1e9),
            attributes=span_attributes(event),
        )
        if event.status != "ok":
            span.set_status(Status(StatusCode.ERROR, event.error_message or event.status))
        span.end(end_time=end_ns)

    def shutdown(self) -> None:
        self.provider.shutdown()


def exporter_from(endpoint: str | None, service_name: str) -> SpanExporter | None:
    if not endpoint:
        return None
    try:
        return SpanExporter(endpoint, service_name)
    except ImportError:
        log.warning(
            "SEAMLINE_OTEL_ENDPOINT is set but OpenTelemetry is not installed: "
            "pip install 'seamline[otel]'"
        )
        return None
