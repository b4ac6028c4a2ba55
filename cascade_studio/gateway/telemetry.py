"""Optional OpenTelemetry export: each request as a span with one child span per tier asked, named
and attributed by the OpenTelemetry GenAI semantic conventions (`gen_ai.*`), sent over OTLP/HTTP to
the operator's collector. Needs `opentelemetry-sdk` and `opentelemetry-exporter-otlp-proto-http`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from cascade_studio.core.errors import UserError

if TYPE_CHECKING:
    from cascade_studio.gateway.cascade import Outcome

INSTALL = "pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http"


class Telemetry:
    def __init__(self, endpoint: str | None = None, exporter: Any = None) -> None:
        """`endpoint`: the collector's OTLP/HTTP traces URL (e.g. http://localhost:4318/v1/traces);
        `exporter`: any span exporter (tests use an in-memory one)."""
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        except ImportError:
            raise UserError(f"--otlp-endpoint needs the OpenTelemetry SDK; install it with `{INSTALL}`") from None
        if exporter is None:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError:
                raise UserError(f"--otlp-endpoint needs the OTLP exporter; install it with `{INSTALL}`") from None
            exporter = OTLPSpanExporter(endpoint=endpoint)
            processor: Any = BatchSpanProcessor(exporter)
        else:
            processor = SimpleSpanProcessor(exporter)
        self.provider = TracerProvider(resource=Resource.create({"service.name": "cascade-studio-gateway"}))
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("cascade_studio.gateway")

    def record(self, request_id: str, outcome: Outcome, started_ns: int, ended_ns: int, category: str) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        answer = outcome.answer
        root = self.tracer.start_span("chat cascade", kind=SpanKind.SERVER, start_time=started_ns, attributes={
            "gen_ai.operation.name": "chat", "cascade.request_id": request_id, "cascade.category": category,
            "cascade.answered_by": answer.tier.tier if answer else -1, "cascade.escalated": outcome.escalated,
            "cascade.tiers_tried": len(outcome.attempts), "cascade.cost_usd": outcome.cost_micro / 1e6,
        })
        context = trace.set_span_in_context(root)
        for a in outcome.attempts:
            url = urlparse(a.tier.base_url)
            attrs: dict[str, Any] = {
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.system": "openai",
                "gen_ai.request.model": a.tier.model, "gen_ai.request.temperature": a.tier.temperature,
                "server.address": url.hostname or "", "server.port": url.port or (443 if url.scheme == "https" else 80),
                "cascade.tier": a.tier.tier, "cascade.kept": a.kept, "cascade.tries": a.tries,
                "cascade.cost_usd": a.cost_micro / 1e6,
            }
            if a.confidence is not None:
                attrs["cascade.confidence"] = a.confidence
            if a.traj is not None and a.response is not None:
                attrs.update({"gen_ai.response.model": str(a.response.get("model") or a.tier.model),
                              "gen_ai.response.id": str(a.response.get("id") or ""),
                              "gen_ai.usage.input_tokens": a.traj.usage.prompt_tokens,
                              "gen_ai.usage.output_tokens": a.traj.usage.completion_tokens})
            else:
                attrs["error.type"] = str(a.upstream_status or a.status)
            span = self.tracer.start_span(f"chat {a.tier.model}", context=context, kind=SpanKind.CLIENT,
                                          start_time=a.started_ns or started_ns, attributes=attrs)
            if a.status != "ok":
                span.set_status(Status(StatusCode.ERROR, (a.error or "")[:200]))
            span.end(end_time=(a.started_ns or started_ns) + int(a.latency_ms * 1e6))
        if answer is None:
            root.set_status(Status(StatusCode.ERROR, "every tier failed"))
        root.end(end_time=ended_ns)

    def close(self) -> None:
        self.provider.shutdown()
