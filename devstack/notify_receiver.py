"""A webhook receiver on loopback: the local stack's stand-in for Slack.

It keeps every JSON body POSTed to it (and can print each as it arrives), so `tenant-keys up`
shows the automations' notifications in the terminal and the tests can assert on them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Notification = dict[str, Any]


class NotificationReceiver:
    """`with NotificationReceiver() as receiver: receiver.url` (http://127.0.0.1:<port>/notify)."""

    def __init__(self, on_notification: Callable[[Notification], None] | None = None) -> None:
        self._received: list[Notification] = []
        self._lock = threading.Lock()
        self._on_notification = on_notification
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="notify-receiver", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/notify"

    def received(self) -> list[Notification]:
        with self._lock:
            return list(self._received)

    def start(self) -> NotificationReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> NotificationReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, body: Notification) -> None:
        with self._lock:
            self._received.append(body)
        if self._on_notification is not None:
            self._on_notification(body)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8", "replace")
                try:
                    body = json.loads(raw) if raw else {}
                except json.JSONDecodeError:
                    body = {"text": raw}
                receiver._record(body if isinstance(body, dict) else {"text": str(body)})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the receiver's callback prints what matters

        return Handler
