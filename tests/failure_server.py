"""A local HTTP server on 127.0.0.1 that misbehaves like a bad day at AWS, for the failure tests.

It speaks the AWS query protocol (form-encoded ``Action=...``, XML answers: CloudFormation)
and the JSON protocol (``X-Amz-Target``: ECS, CloudWatch Logs) only as far as telling the
operation goes. Per operation it can inject, a given number of times or for ever:

- ``throttle``: HTTP 400 with the XML error ``Throttling`` / ``Rate exceeded``,
- ``500``: HTTP 500 with the XML error ``InternalFailure``,
- ``garbage``: HTTP 200 with an HTML page (what a captive portal or broken proxy returns),
- ``drop``: the connection closed without an answer.

Everything else is forwarded to ``upstream`` (moto's server, its answer optionally edited by
``rewrite``) when one is given, or answered by
a canned handler (``answers``: the operations moto does not implement, e.g. drift detection),
or refused with HTTP 400 ``InvalidAction``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("throttle", "500", "garbage", "drop")
Answer = Callable[[dict[str, str]], tuple[int, str]]
"""Form parameters -> (HTTP status, XML body)."""


def xml_error(code: str, message: str, kind: str = "Sender") -> str:
    """An AWS query-protocol error body."""
    return (
        f'<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><Error><Type>{kind}</Type>'
        f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>kr-test</RequestId></ErrorResponse>"
    )


def xml_result(action: str, inner: str) -> str:
    """An AWS query-protocol success body for CloudFormation's ``action``."""
    ns = "http://cloudformation.amazonaws.com/doc/2010-05-15/"
    return (
        f'<{action}Response xmlns="{ns}"><{action}Result>{inner}</{action}Result>'
        f"<ResponseMetadata><RequestId>kr-test</RequestId></ResponseMetadata></{action}Response>"
    )


@dataclass
class FailureServer:
    """The server's script and record; change ``faults`` between calls from the test."""

    url: str = ""
    upstream: str | None = None
    faults: dict[str, list[str]] = field(default_factory=dict)
    """Operation (or ``*``) -> faults to inject, one per request, in order; ``forever:<fault>`` repeats."""
    answers: dict[str, Answer] = field(default_factory=dict)
    rewrite: dict[str, Callable[[str], str]] = field(default_factory=dict)
    """Operation -> edit of upstream's answer body (what moto leaves out, e.g. DriftInformation)."""
    calls: list[tuple[str, str]] = field(default_factory=list)
    """(operation, what happened: a fault, ``answer`` or ``upstream``)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(self, operation: str, *faults: str) -> None:
        """Queue faults for ``operation`` (``*`` = any operation)."""
        for f in faults:
            assert f.removeprefix("forever:") in FAULTS, f
        self.faults.setdefault(operation, []).extend(faults)

    def next_fault(self, operation: str) -> str | None:
        with self.lock:
            for key in (operation, "*"):
                queue = self.faults.get(key)
                if queue:
                    fault = queue[0]
                    if fault.startswith("forever:"):
                        return fault.removeprefix("forever:")
                    return queue.pop(0)
        return None

    def count(self, operation: str, outcome: str | None = None) -> int:
        """How many requests for ``operation`` (with that outcome) came in."""
        return sum(1 for op, what in self.calls if op == operation and (outcome is None or what == outcome))


def _operation(headers: Any, body: bytes) -> tuple[str, dict[str, str]]:
    target = headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1], json.loads(body or b"{}")
    form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
    return form.get("Action", "?"), form


def _handler(state: FailureServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: str, content_type: str = "text/xml") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            operation, params = _operation(self.headers, body)
            fault = state.next_fault(operation)
            with state.lock:
                state.calls.append((operation, fault or ("answer" if operation in state.answers else "upstream")))
            if fault == "throttle":
                return self._send(400, xml_error("Throttling", "Rate exceeded"))
            if fault == "500":
                return self._send(500, xml_error("InternalFailure", "We encountered an internal error", "Receiver"))
            if fault == "garbage":
                return self._send(200, "<html><body>502 Bad Gateway: <b>upstream hiccup</b>", "text/html")
            if fault == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return None
            if operation in state.answers:
                status, text = state.answers[operation](params)
                return self._send(status, text)
            if not state.upstream:
                return self._send(400, xml_error("InvalidAction", f"{operation} is not answered here"))
            return self._forward(body, operation)

        def _forward(self, body: bytes, operation: str) -> None:
            up = urllib.parse.urlsplit(state.upstream)
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if operation in state.rewrite:
                data = state.rewrite[operation](data.decode()).encode()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        do_POST = _handle  # noqa: N815 - BaseHTTPRequestHandler's naming
        do_GET = _handle  # noqa: N815

    return Handler


@contextlib.contextmanager
def failure_server(upstream: str | None = None) -> Iterator[FailureServer]:
    """Serve on a free port of 127.0.0.1; yields the state (``.url``) to script and inspect."""
    state = FailureServer(upstream=upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
