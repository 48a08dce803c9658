"""HTTP connections that obey the outbound policy, redirects and DNS rebinding included.

:class:`PolicyBackend` is the httpcore network backend of the process's client: it resolves the
host, checks every address with the policy, and connects to a checked address (TLS still
verifies and sends the host name: httpcore takes SNI from the request's origin, not from the
socket). Each redirect hop is a new request, so it is checked the same way; a name cannot
resolve to one address for the check and another for the connect, because there is one lookup.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpcore
import httpx

from shipyard.outbound.policy import OutboundPolicy


class PolicyBackend(httpcore.AsyncNetworkBackend):
    """Resolve, check, connect to the checked address."""

    def __init__(
        self, policy: OutboundPolicy, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self.policy = policy
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self.policy.check_host(host, port)
        except OSError as exc:
            # Read as any connection failure ("cannot reach ..."): nothing was sent.
            raise httpcore.ConnectError(f"cannot resolve {host}") from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # check_host returns at least one address
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not outbound addresses")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class PolicyTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with :class:`PolicyBackend` under its pool.

    Through a proxy (``HTTPS_PROXY`` and friends, chosen by the operator) the proxy connects,
    not us: the target is resolved and checked first, and the proxy's own lookup is trusted.
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        limits: httpx.Limits,
        proxy: str | None = None,
    ) -> None:
        super().__init__(limits=limits, proxy=proxy)
        self.policy = policy
        self.proxied = proxy is not None
        if proxy is None:
            # httpx builds the pool without a backend parameter; this is the same pool with ours.
            self._pool = httpcore.AsyncConnectionPool(
                ssl_context=httpx.create_ssl_context(),
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry,
                network_backend=PolicyBackend(policy),
            )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.proxied:
            try:
                await self.policy.check_url(str(request.url))
            except OSError as exc:
                raise httpx.ConnectError(f"cannot resolve {request.url.host}") from exc
        else:
            # Names and addresses refused outright are refused before the pool is asked.
            self.policy.check_literal(request.url.host)
        return await super().handle_async_request(request)
