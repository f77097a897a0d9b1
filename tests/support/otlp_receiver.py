"""A real OTLP/HTTP trace receiver: what an OpenTelemetry collector would see from the Ray replicas."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support.openai_server import ThreadedServer


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    links: tuple[str, ...]  # trace ids this span links to
    attributes: dict


def make_app(spans: list[ReceivedSpan]) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/traces")
    async def traces(request: Request) -> Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.body())
        for resource in message.resource_spans:
            for scope in resource.scope_spans:
                for s in scope.spans:
                    attributes = {a.key: a.value.string_value or a.value.int_value for a in s.attributes}
                    spans.append(
                        ReceivedSpan(
                            s.name,
                            s.trace_id.hex(),
                            s.span_id.hex(),
                            s.parent_span_id.hex(),
                            tuple(link.trace_id.hex() for link in s.links),
                            attributes,
                        )
                    )
        return Response(status_code=200, media_type="application/x-protobuf")

    return app


class OTLPReceiver(ThreadedServer):
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        super().__init__(make_app(self.spans))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"
