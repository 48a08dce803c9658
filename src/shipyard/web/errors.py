"""Turning errors into words a person can act on, and into pages instead of JSON."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError

from shipyard.errors import ShipyardError, Unauthorized
from shipyard.web.templating import is_htmx, render

TITLES = {
    400: "That request did not work",
    401: "Please log in",
    403: "Not allowed",
    404: "Not found",
    409: "That clashes with something that exists",
    422: "Some values need fixing",
    429: "Slow down a little",
    502: "Another system did not answer well",
    503: "Shipyard is not ready",
}


def sentence(message: str) -> str:
    """Service messages are lower-case fragments; pages show them as sentences."""
    message = message.strip()
    if not message:
        return "Something went wrong."
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."


def field_errors(exc: ValidationError | ShipyardError) -> dict[str, str]:
    """Field name → message, from pydantic or from a service's ``ValidationFailed``."""
    errors: dict[str, str] = {}
    if isinstance(exc, ValidationError):
        for pydantic_error in exc.errors():
            name = ".".join(str(part) for part in pydantic_error["loc"]) or "form"
            text = pydantic_error["msg"].removeprefix("Value error, ")
            errors.setdefault(name, sentence(text))
        return errors
    for error in exc.details.get("errors", []):
        if isinstance(error, dict) and "field" in error:
            errors.setdefault(str(error["field"]), sentence(str(error.get("message", ""))))
    field = exc.details.get("field")
    if isinstance(field, str):
        errors.setdefault(field, sentence(exc.message))
    return errors


def form_failure(
    error: ValidationError | ShipyardError | None, *, name_taken: str | None = None
) -> tuple[dict[str, str], str | None, int]:
    """A form's field errors, its sentence and its status code; ``name_taken`` is the conflict
    code that marks the ``name`` field."""
    if error is None:
        return {}, None, 200
    if isinstance(error, ValidationError):
        return field_errors(error), None, 422
    errors = field_errors(error)
    if name_taken is not None and error.code == name_taken:
        errors["name"] = sentence(error.message)
    return errors, sentence(error.message), error.status_code


def login_redirect(request: Request) -> Response:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    location = "/login" if target == "/" else f"/login?next={quote(target, safe='')}"
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


def error_page(request: Request, status_code: int, message: str) -> Response:
    if is_htmx(request):
        # Shown in the page's alert area, whatever element the request meant to update.
        return render(
            request,
            "partials/alert.html",
            {"message": message, "tone": "error"},
            status_code=status_code,
            headers={"HX-Retarget": "#alerts", "HX-Reswap": "innerHTML"},
        )
    return render(
        request,
        "error.html",
        {"title": TITLES.get(status_code, "Something went wrong"), "message": message},
        status_code=status_code,
    )


class WebRoute(APIRoute):
    """A route whose errors become pages (or inline alerts for HTMX), never JSON or a trace."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def web_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthorized:
                return login_redirect(request)
            except ShipyardError as exc:
                return error_page(request, exc.status_code, sentence(exc.message))
            except RequestValidationError as exc:
                names = sorted(
                    {
                        str(error.get("loc", ("", "value"))[-1])
                        for error in exc.errors()
                        if error.get("loc")
                    }
                )
                return error_page(
                    request, 422, sentence(f"please check: {', '.join(names) or 'the form'}")
                )

        return web_handler
