"""A webhook receiver on a loopback port: it keeps every POST (body and headers) and can
refuse the first ones, to see the sender retry."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Delivery:
    body: bytes
    headers: dict[str, str]
    status: int


@dataclass
class WebhookReceiver:
    server: ThreadingHTTPServer
    deliveries: list[Delivery] = field(default_factory=list)
    refuse: int = 0  # answer 500 to this many more deliveries

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/video"

    def wait(self, predicate: object, within: float = 15.0) -> list[Delivery]:
        """The deliveries (accepted or not) for which `predicate(delivery)` holds."""
        deadline = time.monotonic() + within
        while True:
            found = [d for d in list(self.deliveries) if predicate(d)]  # type: ignore[operator]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_receiver() -> WebhookReceiver:
    receiver: WebhookReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = 200
            if receiver.refuse > 0:
                receiver.refuse -= 1
                status = 500
            receiver.deliveries.append(Delivery(body, dict(self.headers.items()), status))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = WebhookReceiver(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver
