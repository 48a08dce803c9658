"""A small routed HTTP server on a loopback port, run in a background thread, for the CI fakes.

Each fake registers routes (method + path regex) and answers with :class:`Reply`. Tests can
inject failures (``fail_next``) and read the requests received (``requests``).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    match: re.Match[str] | None = None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        parsed = parse_qs(self.body.decode(), keep_blank_values=True)
        return {key: values[-1] for key, values in parsed.items()}

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def cookies(self) -> dict[str, str]:
        result = {}
        for part in (self.header("cookie") or "").split(";"):
            name, sep, value = part.strip().partition("=")
            if sep:
                result[name] = value
        return result


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.content_type or "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), self.content_type or "text/plain;charset=utf-8"
        if self.body is None:
            return b"", self.content_type or "text/plain;charset=utf-8"
        return json.dumps(
            self.body
        ).encode(), self.content_type or "application/json; charset=utf-8"


Handler = Callable[[Request], Reply]


@dataclass
class Fault:
    status: int
    body: Any
    headers: dict[str, str]
    path_contains: str | None
    remaining: int
    delay: float = 0.0


class FakeServer:
    """Base of the fakes: routing, fault injection, request log, start/stop."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._faults: list[Fault] = []
        self.lock = threading.RLock()
        self.requests: list[Request] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        # A path the API is served under as well as at the root (GitHub Enterprise's /api/v3).
        self.base_path = ""

    # Set-up ---------------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(pattern), handler))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                path = parts.path
                if fake.base_path and path.startswith(fake.base_path + "/"):
                    path = path.removeprefix(fake.base_path)
                request = Request(
                    method=self.command,
                    path=path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={key.lower(): value for key, value in self.headers.items()},
                    body=body,
                )
                reply = fake.dispatch(request)
                payload, content_type = reply.encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=f"fake-{type(self).__name__}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # Faults ---------------------------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        body: Any = "Service Unavailable",
        headers: dict[str, str] | None = None,
        path_contains: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` (after ``delay`` s)."""
        with self.lock:
            self._faults.append(
                Fault(status, body, dict(headers or {}), path_contains, count, delay)
            )

    def _fault_for(self, request: Request) -> Fault | None:
        with self.lock:
            for fault in self._faults:
                if fault.remaining > 0 and (
                    fault.path_contains is None or fault.path_contains in request.path
                ):
                    fault.remaining -= 1
                    return fault
        return None

    # Dispatch -------------------------------------------------------------------------

    def authenticate(self, request: Request) -> Reply | None:
        """Return an error reply when the request is not allowed; None to continue."""
        return None

    def not_found(self, request: Request) -> Reply:
        return Reply(404, {"message": "Not Found"})

    def dispatch(self, request: Request) -> Reply:
        with self.lock:
            self.requests.append(request)
        fault = self._fault_for(request)
        if fault is not None:
            if fault.delay:
                threading.Event().wait(fault.delay)
            return Reply(fault.status, fault.body, dict(fault.headers))
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match and (
                method == request.method or (method == "GET" and request.method == "HEAD")
            ):
                request.match = match
                denied = self.authenticate(request)
                if denied is not None:
                    return denied
                with self.lock:
                    return handler(request)
        denied = self.authenticate(request)
        return denied if denied is not None else self.not_found(request)

    def seen(self, method: str, path_contains: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.method == method and path_contains in r.path]
