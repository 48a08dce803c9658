"""A small REST client for the command line: errors as one line, SSE that resumes."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import httpx_sse

log = logging.getLogger(__name__)

# A dropped stream is opened again after this pause, up to this many times in a row (a
# reconnect that delivers an event resets the count).
RECONNECT_PAUSE_SECONDS = 1.0
RECONNECT_ATTEMPTS = 10
# Answers of a server (or the proxy before it) that is restarting: the stream is opened again.
UNAVAILABLE_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event: its name, id and data (JSON text)."""

    event: str
    id: str | None
    data: str


class ApiError(Exception):
    """The server refused a request, or could not be reached; ``str()`` is one line for the user."""

    def __init__(
        self, message: str, *, status_code: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code


class ApiClient:
    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        anonymous: bool = False,
    ) -> None:
        """``anonymous``: no token at all (signing in); else a token is required."""
        if base_url is None or (token is None and not anonymous):
            # The command's --url/--token/--profile, else the environment, else the profile.
            from shipyard.client.output import options
            from shipyard.client.profiles import ProfileError, resolve

            try:
                target = resolve(
                    url=options.get("url"),
                    token=options.get("token"),
                    profile=options.get("profile"),
                )
            except ProfileError as exc:
                raise ApiError(str(exc)) from exc
            base_url, token = base_url or target.url, token or target.token
        self.base_url = base_url.rstrip("/")
        self.token = token
        if not self.token and not anonymous:
            raise ApiError(
                f"no API token for {self.base_url}: run `shipyard login {self.base_url}`, or set "
                "SHIPYARD_TOKEN (create one with POST /api/v1/auth/tokens)"
            )
        self._http = httpx.Client(
            base_url=self.base_url + "/api/v1",
            headers={"User-Agent": "shipyard-cli"}
            | ({"Authorization": f"Bearer {self.token}"} if self.token else {}),
            timeout=timeout,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(
                f"cannot reach Shipyard at {self.base_url}: {type(exc).__name__}"
            ) from exc
        if response.status_code >= 400:
            raise error_from(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, json: Any | None = None) -> Any:
        return self.request("POST", path, json=json)

    def patch(self, path: str, json: Any) -> Any:
        return self.request("PATCH", path, json=json)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def paginate(self, path: str, *, limit: int = 100, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list, page by page."""
        cursor = None
        while True:
            page = self.get(path, limit=limit, cursor=cursor, **params)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def stream_lines(self, path: str, headers: dict[str, str] | None = None) -> Iterator[str]:
        """Raw lines of a streamed (not SSE) response: a download, an export."""
        try:
            with self._http.stream("GET", path, headers=headers, timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from(response)
                yield from response.iter_lines()
        except httpx.HTTPError as exc:
            raise ApiError(f"the stream from {self.base_url} broke: {type(exc).__name__}") from exc

    def events(
        self, path: str, *, last_event_id: str | None = None, final_event: str = "end"
    ) -> Iterator[Event]:
        """The events of an SSE stream (httpx-sse) up to and including ``final_event``.

        A stream that drops, closes before ``final_event``, or meets a server or proxy that is
        restarting (502, 503, 504), is opened again with ``Last-Event-ID`` so no event is lost
        or repeated; any other refusal (4xx, 500) is raised at once. Blocks without data (the
        ``retry:`` hint, keep-alives) are not events (as in the SSE specification) and do not
        count as progress: a connection cut before any event counts toward the attempts."""
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            try:
                with httpx_sse.connect_sse(
                    self._http, "GET", path, headers=headers, timeout=httpx.Timeout(30.0, read=None)
                ) as source:
                    response = source.response
                    if response.status_code >= 400:
                        response.read()
                        error = error_from(response)
                        if response.status_code in UNAVAILABLE_STATUSES:
                            raise _ClosedEarly(str(error))
                        raise error
                    for sse in source.iter_sse():
                        if not sse.data:
                            continue
                        failures = 0
                        if sse.id:
                            last_event_id = sse.id
                        yield Event(event=sse.event, id=sse.id or None, data=sse.data)
                        if sse.event == final_event:
                            return
                raise _ClosedEarly("the server closed the stream before its end")
            except (httpx.TransportError, httpx_sse.SSEError, _ClosedEarly) as exc:
                failures += 1
                if failures > RECONNECT_ATTEMPTS:
                    raise ApiError(
                        f"the stream from {self.base_url} broke {failures} times in a row: "
                        f"{type(exc).__name__}"
                    ) from exc
                log.info(
                    "stream dropped (%s); resuming after event %s",
                    type(exc).__name__,
                    last_event_id,
                )
                time.sleep(RECONNECT_PAUSE_SECONDS)


class _ClosedEarly(Exception):
    """The stream ended without its final event (a server restarting, a proxy's time-out)."""


def error_from(response: httpx.Response) -> ApiError:
    try:
        error = response.json()["error"]
        message = error["message"]
        code = error.get("code")
        # A 422 names the field in its details; say it first, as the API's own messages do.
        fields = [
            item["field"]
            for item in (error.get("details") or {}).get("errors") or []
            if isinstance(item, dict) and item.get("field")
        ]
        if fields and not str(message).startswith(str(fields[0])):
            message = f"{fields[0]}: {message}"
    except (ValueError, KeyError, TypeError):
        message, code = response.text[:200] or response.reason_phrase, None
    return ApiError(
        f"{message} (HTTP {response.status_code})", status_code=response.status_code, code=code
    )
