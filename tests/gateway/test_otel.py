"""Each call becomes an OpenTelemetry span with GenAI attribute names, in the caller's trace."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from seamline.telemetry.otel import SpanExporter, parse_traceparent
from tests.gateway.conftest import RunningGateway

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def test_spans_carry_genai_attributes_and_join_the_callers_trace(
    gateway: RunningGateway,
) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    gateway.app.gateway.spans = SpanExporter(provider=provider)
    gateway.client().chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hello there"}],
        extra_headers={"traceparent": f"00-{TRACE_ID}-{PARENT}-01"},
    )
    gateway.events(1)
    [span] = memory.get_finished_spans()
    assert span.name == "chat gpt-4o-mini"
    assert span.attributes is not None
    assert span.attributes["gen_ai.operation.name"] == "chat"
    assert span.attributes["gen_ai.system"] == "openai"
    assert span.attributes["gen_ai.usage.input_tokens"] == 2
    assert span.attributes["gen_ai.usage.output_tokens"] == 4
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT
    assert gateway.events(1)[0]["trace_id"] == TRACE_ID


def test_malformed_traceparents_are_ignored() -> None:
    assert parse_traceparent(f"00-{TRACE_ID}-{PARENT}-01") == (TRACE_ID, PARENT)
    for bad in (None, "", "garbage", f"00-{'0' * 32}-{PARENT}-01", f"00-{TRACE_ID}-xyz-01"):
        assert parse_traceparent(bad) is None
