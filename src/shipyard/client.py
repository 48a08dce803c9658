"""A small REST client for the command line: SHIPYARD_URL + SHIPYARD_TOKEN, errors as one line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"


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
        self, base_url: str | None = None, token: str | None = None, *, timeout: float = 30.0
    ) -> None:
        self.base_url = (base_url or os.environ.get("SHIPYARD_URL") or DEFAULT_URL).rstrip("/")
        self.token = token or os.environ.get("SHIPYARD_TOKEN")
        if not self.token:
            raise ApiError(
                "set SHIPYARD_TOKEN to a personal API token (create one with POST /api/v1/auth/tokens)"
            )
        self._http = httpx.Client(
            base_url=self.base_url + "/api/v1",
            headers={"Authorization": f"Bearer {self.token}", "User-Agent": "shipyard-cli"},
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
        """Raw lines of a streaming (SSE) response."""
        try:
            with self._http.stream("GET", path, headers=headers, timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from(response)
                yield from response.iter_lines()
        except httpx.HTTPError as exc:
            raise ApiError(f"the stream from {self.base_url} broke: {type(exc).__name__}") from exc


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
