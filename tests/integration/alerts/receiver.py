"""A local webhook receiver that records what it gets (stands in for Slack / a CRM).

It can go down (socket closed: connection refused, like a crashed receiver)
and come back on the same port, and it checks HMAC signatures as a real
receiver would.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from healthstream.broker import free_port
from services.alerts.signing import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


@dataclass
class Received:
    path: str
    delivery_id: str
    body: dict[str, Any]
    signature_ok: bool | None
    at: float


@dataclass
class Recorder:
    secret: str = "receiver-secret"
    port: int = field(default_factory=free_port)
    delay: float = 0.0
    #: Paths answered with HTTP 500 (a receiver that is up but broken).
    failing_paths: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Recorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if recorder.delay:
                    time.sleep(recorder.delay)
                if self.path in recorder.failing_paths:
                    self.send_response(500)
                    self.send_header("Content-Length", "6")
                    self.end_headers()
                    self.wfile.write(b"broken")
                    return
                signature = self.headers.get(SIGNATURE_HEADER)
                ok = None
                if signature is not None:
                    ok = verify(
                        recorder.secret, self.headers.get(TIMESTAMP_HEADER, ""), raw, signature
                    )
                with recorder._lock:
                    recorder.received.append(
                        Received(
                            path=self.path,
                            delivery_id=self.headers.get(DELIVERY_HEADER, ""),
                            body=json.loads(raw),
                            signature_ok=ok,
                            at=time.time(),
                        )
                    )
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def snapshot(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if path is None or r.path == path]
