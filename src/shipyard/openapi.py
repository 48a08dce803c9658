"""The REST API's OpenAPI description as a product: names, tags, auth, errors and streams.

FastAPI's defaults make poor generated clients: operation ids such as
``list_providers_api_v1_git_providers_get``, one tag per router rather than per domain, no
security scheme, a documented 422 body (``{detail}``) that is not the real one
(``{"error": {code, message, details}}``), no other error answer, schema titles that repeat
across domains, and the live log stream described as JSON. :func:`install` fixes each of these
once, for every route, from what the route itself declares (its path, its endpoint's module and
name, its dependencies), so a new route is described correctly without anyone remembering to.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import APIRoute

from shipyard.deps import get_principal

API_PREFIX = "/api/v1"
ERROR_SCHEMA = "ErrorResponse"
SECURITY_SCHEME = "bearer"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# One tag per domain, in the order a reader meets them.
DOMAIN_TAGS: dict[str, str] = {
    "accounts": "Sign-up, log-in, tokens, your profile, the team and its members.",
    "sso": "Single sign-on: identity providers, group-to-role rules, the log-in policy.",
    "git": "Git providers (tokens and OAuth) and the repositories synced from them.",
    "hosts": "Servers, their SSH keys and host keys, groups, tags, variables, inventory import.",
    "templates": "Saved run definitions with parameters; launch, preview, roll back.",
    "deployments": "Runs: create, watch, cancel, re-run; their scripts, results and logs.",
    "schedules": "Cron schedules on templates, their fires and misses.",
    "webhooks": "Inbound webhooks that launch templates, and their deliveries.",
    "cicd": "CI/CD providers (Jenkins, GitHub Actions, CircleCI) and their jobs.",
    "notifications": "Notification channels, rules and deliveries.",
    "approvals": "Runs waiting for approval: list, approve, reject.",
    "freeze": "Freeze windows: periods closed to deployments.",
    "audit": "The audit trail: entries, export, streams, retention.",
    "health": "Liveness, readiness and metrics.",
}
# Operation ids the general rule would name poorly.
OPERATION_IDS: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "health_live",
    ("GET", "/readyz"): "health_ready",
    ("GET", "/metrics"): "health_metrics",
    ("GET", f"{API_PREFIX}/me"): "me_get",
}
# Answers some operations give beyond what their declaration shows.
RATE_LIMITED_PATHS = re.compile(
    rf"^{API_PREFIX}/(auth/(login|signup|accept-invitation|ldap)|hooks/)"
)
UPSTREAM_NAMES = re.compile(
    r"(^|_)(test|sync|register|unregister|branches|tree|file|scripts|oauth|deliver|launch|"
    r"rerun|rollback|create_deployment|add_repository|create_provider|update_provider|"
    r"create_host|update_host|generate_key|accept_host_key|create_channel|update_channel|"
    r"create_audit_stream|update_audit_stream|create_webhook|update_settings)($|_)"
)
STREAM_EVENTS = "log (one line), status (the run's status changed), end (the run is final)"

_ID = "3f1c2a9e-7b4d-4e8a-9c51-2d6f0b8e4a17"
_HOST_ID = "8a2e4c6d-1f3b-4d5a-8e7c-9b0a1c2d3e4f"
_SCRIPT_ID = "5b7d9f1a-3c5e-4a7b-9d1f-2e4a6c8e0b13"
_GROUP_ID = "6c8e0a2b-4d6f-4b8c-8e2a-3f5b7d9f1a24"
# Request and response examples of the operations people script first.
EXAMPLES: dict[str, dict[str, Any]] = {
    "auth_login": {
        "request": {"email": "ops@example.com", "password": "correct horse battery staple"},
    },
    "auth_create_token": {"request": {"name": "ci-pipeline", "expires_in_days": 90}},
    "hosts_create": {
        "request": {
            "name": "web-1",
            "ip": "10.0.0.11",
            "user": "deploy",
            "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\n...",
            "tags": ["web", "eu"],
        },
    },
    "repositories_add": {"request": {"url": "https://github.com/acme/deploy-scripts"}},
    "templates_create": {
        "request": {
            "name": "release",
            "repository_id": _ID,
            "ref": "main",
            "scripts": [{"script_id": _SCRIPT_ID, "arguments": ["--version={{ version }}"]}],
            "target": {"group_ids": [_GROUP_ID], "tags": ["web"]},
            "parameters": [{"name": "version", "type": "string", "required": True}],
        },
    },
    "templates_launch": {
        "request": {"parameters": {"version": "1.4.2"}},
    },
    "deployments_create": {
        "request": {
            "name": "hotfix",
            "repository_id": _ID,
            "ref": "main",
            "scripts": [{"script_id": _SCRIPT_ID}],
            "host_ids": [_HOST_ID],
        },
    },
}

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The request cannot be carried out as asked.",
    401: "No valid bearer token: missing, expired, revoked, or the account is disabled.",
    403: "Your role does not allow this, or the team's policy refuses it.",
    404: "No such resource in your team (other teams' ids answer the same).",
    409: "It conflicts with the current state (a name taken, a run already final, ...).",
    413: "The request body is larger than this operation accepts.",
    422: "A field is missing or invalid; `details.errors` names each field.",
    429: "Too many attempts: retry after the `Retry-After` seconds.",
    502: "An upstream (Git provider, CI/CD server, host, identity provider) failed or refused.",
    503: "The database is not answering: retry after the `Retry-After` seconds.",
}


@dataclass
class RouteFacts:
    """What the description needs to know of one operation, read from its route."""

    method: str
    path: str
    domain: str
    authenticated: bool
    has_path_parameters: bool
    has_input: bool
    name: str


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for inner in dependant.dependencies:
        yield from _dependants(inner)


def _domain(route: APIRoute) -> str:
    module = getattr(route.endpoint, "__module__", "") or ""
    parts = module.split(".")
    if len(parts) >= 2 and parts[0] == "shipyard" and parts[1] in DOMAIN_TAGS:
        return parts[1]
    return "health"  # shipyard.api: liveness, readiness, metrics


def _words(text: str) -> list[str]:
    return [word for word in re.split(r"[^a-z0-9]+", text.lower()) if word]


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def operation_id(method: str, path: str, name: str) -> str:
    """``{resource}_{action}``: the path's first segment after the prefix, then the endpoint's
    name without the resource's own words (``list_hosts`` on /hosts → ``hosts_list``)."""
    known = OPERATION_IDS.get((method, path))
    if known:
        return known
    segments = [s for s in path.removeprefix(API_PREFIX).split("/") if s and "{" not in s]
    # A router's own routes are named too before they are mounted (their path may be empty
    # then); only the names of mounted routes reach the description.
    resource = "_".join(_words(segments[0])) if segments else "root"
    nouns = {form for word in _words(resource) for form in (word, _singular(word))}
    action = [word for word in _words(name) if word not in nouns]
    if not action:
        action = [{"GET": "get", "DELETE": "delete", "POST": "create"}.get(method, "update")]
    return f"{resource}_{'_'.join(action)}"


class Description:
    """Collects route facts while FastAPI names operations, then rewrites the schema."""

    def __init__(self) -> None:
        self.facts: dict[str, RouteFacts] = {}

    def unique_id(self, route: APIRoute) -> str:
        method = sorted(route.methods or {"GET"})[0]
        if not getattr(route, "include_in_schema", True):
            # Web pages: not in the description; their id only has to exist.
            return f"web_{route.name}_{method.lower()}"
        identifier = operation_id(method, route.path, route.name)
        dependant = get_dependant(path=route.path, call=route.endpoint)
        every = list(_dependants(dependant))
        calls = [inner.call for inner in every]
        for depends in getattr(route, "dependencies", None) or []:
            if depends.dependency is not None:
                calls.append(depends.dependency)
                calls.extend(
                    inner.call
                    for inner in _dependants(
                        get_dependant(path=route.path, call=depends.dependency)
                    )
                )
        self.facts[identifier] = RouteFacts(
            method=method,
            path=route.path,
            domain=_domain(route),
            authenticated=get_principal in calls,
            has_path_parameters=any(inner.path_params for inner in every),
            has_input=any(
                inner.path_params or inner.query_params or inner.body_params for inner in every
            ),
            name=route.name,
        )
        return identifier

    def codes(self, facts: RouteFacts) -> set[int]:
        """The error answers the operation can give."""
        codes = {503} if facts.path.startswith(API_PREFIX) or facts.path == "/readyz" else set()
        if facts.authenticated:
            codes |= {401, 403}
        if facts.has_path_parameters:
            codes.add(404)
        if facts.has_input or facts.method in UNSAFE_METHODS:
            codes.add(422)
        if facts.method in UNSAFE_METHODS:
            codes |= {400, 409, 413}
        if RATE_LIMITED_PATHS.match(facts.path):
            codes.add(429)
        if facts.path.startswith(f"{API_PREFIX}/auth/") and facts.method == "POST":
            codes |= {401, 403}
        if UPSTREAM_NAMES.search(facts.name) or facts.path.endswith("/test"):
            codes.add(502)
        return codes

    def rewrite(self, schema: dict[str, Any]) -> dict[str, Any]:
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        _rename_duplicate_schemas(schema)
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas[ERROR_SCHEMA] = ERROR_BODY
        components["securitySchemes"] = {
            SECURITY_SCHEME: {
                "type": "http",
                "scheme": "bearer",
                "description": "A personal API token (`POST /api/v1/auth/tokens`) or a log-in "
                "session token (`POST /api/v1/auth/login`).",
            }
        }
        used_tags: set[str] = set()
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                facts = self.facts.get(operation.get("operationId", ""))
                if facts is None:
                    continue
                operation["tags"] = [facts.domain]
                used_tags.add(facts.domain)
                # Public operations say so (an empty list), rather than leaving it unsaid.
                operation["security"] = [{SECURITY_SCHEME: []}] if facts.authenticated else []
                responses = operation.setdefault("responses", {})
                declared = {int(code) for code in responses if code[:1] in "45"}
                for code in sorted(self.codes(facts) | declared):
                    described = responses.get(str(code), {}).get("description")
                    responses[str(code)] = _error_response(code)
                    if code in declared and described and code != 422:
                        responses[str(code)]["description"] = described
                example = EXAMPLES.get(operation.get("operationId", ""), {})
                body = operation.get("requestBody", {}).get("content", {}).get("application/json")
                if "request" in example and body is not None:
                    body["example"] = example["request"]
                if path.endswith("/logs/stream") and method == "get":
                    responses["200"] = {
                        "description": f"Server-sent events: {STREAM_EVENTS}. Resume with "
                        "`Last-Event-ID` (the last line's sequence number).",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    }
        schema.setdefault("info", {})["license"] = {
            "name": "Apache-2.0",
            "identifier": "Apache-2.0",
        }
        # Relative: the description is served by the installation it describes.
        schema["servers"] = [{"url": "/", "description": "This Shipyard installation"}]
        schema["tags"] = [
            {"name": name, "description": text}
            for name, text in DOMAIN_TAGS.items()
            if name in used_tags
        ]
        return schema


ERROR_BODY: dict[str, Any] = {
    "title": ERROR_SCHEMA,
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "description": "A stable, machine-readable code."},
                "message": {"type": "string", "description": "What went wrong, in a sentence."},
                "details": {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "More about it: `errors` (a list of {field, message, "
                    "type}) for a 422, `retry_after` for a 429, ...",
                },
            },
        }
    },
    "example": {
        "error": {
            "code": "validation_error",
            "message": "name: Field required",
            "details": {"errors": [{"field": "name", "message": "Field required"}]},
        }
    },
}


def _error_response(code: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": ERROR_DESCRIPTIONS.get(code, "An error."),
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}
        },
    }
    if code == 401:
        response["headers"] = {
            "WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer`"}
        }
    if code in (429, 503):
        response["headers"] = {
            "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}
        }
    return response


# FastAPI names a schema whose class name repeats across modules by its module path
# (``shipyard__sso__schemas__ProviderRead``) and keeps the repeated title; generated clients
# then drop one of them. Such schemas get the domain's name in front instead.
_MODULE_KEY = re.compile(r"^shipyard__(?P<domain>[a-z_]+)__[a-z_]+__(?P<name>\w+)$")
_DOMAIN_PREFIX = {
    "cicd": "Cicd",
    "git": "Git",
    "sso": "Sso",
    "notifications": "Notification",
    "webhooks": "Webhook",
    "deployments": "Deployment",
    "hosts": "Host",
    "templates": "Template",
}


def _rename_duplicate_schemas(schema: dict[str, Any]) -> None:
    schemas: dict[str, Any] = schema["components"]["schemas"]
    renames: dict[str, str] = {}
    for key in list(schemas):
        match = _MODULE_KEY.match(key)
        if match is None:
            continue
        domain, name = match["domain"], match["name"]
        prefix = _DOMAIN_PREFIX.get(domain, domain.title().replace("_", ""))
        new = name if name.startswith(prefix) else f"{prefix}{name}"
        renames[key] = new
    for old, new in renames.items():
        body = schemas.pop(old)
        body["title"] = new
        schemas[new] = body
    if renames:
        _replace_refs(
            schema,
            {f"#/components/schemas/{o}": f"#/components/schemas/{n}" for o, n in renames.items()},
        )


def _replace_refs(node: Any, refs: dict[str, str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref in refs:
            node["$ref"] = refs[ref]
        for value in node.values():
            _replace_refs(value, refs)
    elif isinstance(node, list):
        for value in node:
            _replace_refs(value, refs)


def install(app: FastAPI, description: Description) -> None:
    """Serve the rewritten description (built once, on first request) at /openapi.json."""
    original: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = description.rewrite(original())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
