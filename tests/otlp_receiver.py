"""An OTLP/HTTP trace receiver for the tests: decodes each POSTed body with
the OpenTelemetry project's own protobuf definitions (PyPI
`opentelemetry-proto`) and appends every span to OUT as one JSON line.

    python3 otlp_receiver.py OUT

Listens on a free port of 127.0.0.1 and prints `ready PORT`. A body that is
not an ExportTraceServiceRequest, or is sent with another path or content
type, is answered 400 and recorded as an `{"error": ...}` line, so the test
sees it. Stops when killed.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

OUT = open(sys.argv[1], "a", encoding="utf-8")
REQUESTS = 0


def value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in any_value.kvlist_value.values}
    if kind == "bytes_value":
        return any_value.bytes_value.hex()
    return getattr(any_value, kind) if kind else None


def attributes(key_values):
    return {kv.key: value(kv.value) for kv in key_values}


def write(record):
    OUT.write(json.dumps(record) + "\n")
    OUT.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global REQUESTS
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        problem = None
        if self.path != "/v1/traces":
            problem = f"path {self.path}"
        elif self.headers.get("Content-Type") != "application/x-protobuf":
            problem = f"content type {self.headers.get('Content-Type')}"
        request = ExportTraceServiceRequest()
        if problem is None:
            try:
                request.ParseFromString(body)
            except DecodeError as err:
                problem = f"not an ExportTraceServiceRequest: {err}"
        if problem is not None:
            write({"error": problem})
            self.answer(400, b"")
            return
        REQUESTS += 1
        for resource_spans in request.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    write(
                        {
                            "request": REQUESTS,
                            "resource": resource,
                            "scope": scope_spans.scope.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "name": span.name,
                            "kind": span.kind,
                            "start_unix_ns": span.start_time_unix_nano,
                            "end_unix_ns": span.end_time_unix_nano,
                            "status_code": span.status.code,
                            "attributes": attributes(span.attributes),
                        }
                    )
        self.answer(200, ExportTraceServiceResponse().SerializeToString())

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
print(f"ready {server.server_address[1]}", flush=True)
server.serve_forever()
