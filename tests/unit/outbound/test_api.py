"""The provider-API layer against a MockTransport: retries, rate limits, one error mapping."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from shipyard.outbound.api import ProviderApi, RetryPolicy, response_reason, segments
from shipyard.outbound.errors import (
    CredentialsRefused,
    MalformedResponse,
    UpstreamFailed,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamUnreachable,
)
from shipyard.outbound.masking import Masker, mask
from shipyard.outbound.ratelimit import RateLimitGate

Handler = Callable[[httpx.Request], httpx.Response]


def _api(handler: Handler, *, retry: float = 1.0, secrets: tuple[str, ...] = ()) -> ProviderApi:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return ProviderApi(
        http,
        label="Jenkins",
        base_url="http://ci.example/",
        retry=RetryPolicy(retry, first_backoff=0.01, max_backoff=0.02),
        gate=RateLimitGate(max_wait=1, total_wait=1, backoff=0.01),
        secrets=secrets,
    )


def _scripted(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler, seen


def _response(status: int, **kwargs: object) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", "http://ci/x"), **kwargs)  # type: ignore[arg-type]


async def test_401_and_403_are_credentials_refused_a_4xx_with_the_providers_reason() -> None:
    handler, _ = _scripted(httpx.Response(401, json={"message": "Bad credentials"}))
    with pytest.raises(CredentialsRefused) as refused:
        await _api(handler).request("GET", "me")
    assert refused.value.status_code == 409 and refused.value.code == "provider_unauthorized"
    assert refused.value.message == "Jenkins refused the token (HTTP 401): Bad credentials"
    assert refused.value.details == {
        "provider": "Jenkins",
        "reason": "Bad credentials",
        "status": 401,
    }

    handler, _ = _scripted(httpx.Response(403, json={"message": "Resource not accessible"}))
    with pytest.raises(CredentialsRefused) as forbidden:
        await _api(handler).request("GET", "me")
    assert forbidden.value.code == "provider_forbidden" and forbidden.value.status_code == 409


async def test_404_is_upstream_not_found_in_every_client() -> None:
    handler, _ = _scripted(httpx.Response(404, json={"message": "Not Found"}))
    with pytest.raises(UpstreamNotFound) as missing:
        await _api(handler).request("GET", "repos/a/b")
    assert missing.value.status_code == 404 and missing.value.code == "upstream_not_found"
    assert "/repos/a/b" in missing.value.message


async def test_idempotent_5xx_is_retried_until_it_recovers() -> None:
    handler, seen = _scripted(
        httpx.Response(503), httpx.Response(500), httpx.Response(200, json={"ok": True})
    )
    assert await _api(handler).get_json("x") == {"ok": True}
    assert len(seen) == 3


async def test_a_trigger_is_not_retried_after_a_500_but_is_after_a_503() -> None:
    handler, seen = _scripted(httpx.Response(500, text="boom"))
    with pytest.raises(UpstreamFailed):
        await _api(handler).request("POST", "build")
    assert len(seen) == 1
    handler, seen = _scripted(httpx.Response(503), httpx.Response(201))
    assert (await _api(handler).request("POST", "build")).status_code == 201
    assert len(seen) == 2


async def test_the_budget_ends_retries_and_says_so() -> None:
    handler, seen = _scripted(httpx.Response(503, text="restarting"))
    with pytest.raises(UpstreamFailed) as failed:
        await _api(handler, retry=0.05).request("GET", "x")
    assert "restarting" in failed.value.message and "gave up after" in failed.value.message
    assert len(seen) >= 2


async def test_refused_and_timed_out_connections_read_the_same() -> None:
    messages = []
    for error in (httpx.ConnectError("refused"), httpx.ConnectTimeout("slow")):
        handler, _ = _scripted(error)
        with pytest.raises(UpstreamUnreachable) as unreachable:
            await _api(handler, retry=0).request("GET", "x")
        messages.append(unreachable.value.message)
    assert messages[0] == messages[1]
    assert messages[0] == "cannot reach Jenkins at ci.example: the connection failed or timed out"
    assert "refused" not in messages[0].split(":", 1)[1] or "slow" not in messages[0]


async def test_a_read_timeout_on_a_trigger_is_not_retried() -> None:
    handler, seen = _scripted(httpx.ReadTimeout("slow"), httpx.Response(201))
    with pytest.raises(UpstreamUnreachable):
        await _api(handler).request("POST", "build")
    assert len(seen) == 1


@pytest.mark.parametrize(
    "limited",
    [
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.Response(403, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "0"}),
        httpx.Response(403, json={"message": "You have exceeded a secondary rate limit"}),
        httpx.Response(429, headers={"ratelimit-reset": "0"}),
    ],
)
async def test_rate_limits_are_waited_out_even_for_a_trigger(limited: httpx.Response) -> None:
    handler, seen = _scripted(limited, httpx.Response(204))
    assert (await _api(handler).request("POST", "dispatches")).status_code == 204
    assert len(seen) == 2


async def test_a_rate_limit_longer_than_the_budget_fails_as_rate_limited() -> None:
    handler, _ = _scripted(httpx.Response(429, headers={"Retry-After": "5"}))
    with pytest.raises(UpstreamRateLimited) as limited:
        await _api(handler).request("GET", "x")
    assert limited.value.status_code == 503


async def test_secrets_never_reach_a_message() -> None:
    handler, _ = _scripted(httpx.Response(400, json={"message": "token s3cr3t-value is bad"}))
    with pytest.raises(UpstreamFailed) as failed:
        await _api(handler, secrets=("s3cr3t-value",)).request("GET", "x")
    assert "s3cr3t-value" not in failed.value.message and "token *** is bad" in failed.value.message


async def test_credentials_are_never_sent_to_another_origin() -> None:
    handler, seen = _scripted(httpx.Response(200))
    with pytest.raises(MalformedResponse):
        await _api(handler).request("GET", "http://elsewhere.example/next?page=2")
    assert seen == []


async def test_a_body_that_is_not_json_is_malformed() -> None:
    handler, _ = _scripted(httpx.Response(200, text="<html>"))
    with pytest.raises(MalformedResponse):
        await _api(handler).get_json("x")


def test_path_segments_are_quoted() -> None:
    assert segments("acme/my repo#1") == "acme/my%20repo%231"
    assert segments("a/b?c") == "a/b%3Fc"


def test_reasons_come_from_json_messages_or_page_text() -> None:
    assert response_reason(_response(401, json={"message": "Bad credentials"})) == "Bad credentials"
    page = "<html><head><title>Error</title><style>p{}</style></head><body><h2>No &amp; way</h2></body></html>"
    assert response_reason(_response(403, text=page)) == "No & way"
    assert response_reason(_response(500, text="")) == "Internal Server Error"
    assert response_reason(_response(400, json={"error_description": "bad code"})) == "bad code"
    masked = response_reason(
        _response(400, json={"message": "token abc123 bad"}), Masker(["abc123"])
    )
    assert masked == "token *** bad"


def test_the_masker_masks_longest_first_and_each_line_of_a_key() -> None:
    masker = Masker(["abcd", "abcdef", "line-one\nline-two", None, ""])
    assert masker("abcdef abcd") == "*** ***"
    assert masker("got line-two here") == "got *** here"
    assert mask("a-b-a", ["a"]) == "a-b-a"  # too short to mask by default
    assert mask("a-b-a", ["a"], min_length=1) == "***-b-***"
    assert not Masker([]) and Masker(["long-secret"])
