"""The outbound policy's decisions: address spellings, ranges, exceptions, and git's pinning."""

from __future__ import annotations

import ipaddress
import socket

import httpx
import pytest

from shipyard.config import Settings
from shipyard.errors import ValidationFailed
from shipyard.git.gitcmd import curl_resolve, git_environment
from shipyard.outbound.client import build_http_client
from shipyard.outbound.errors import OutboundRefused
from shipyard.outbound.policy import (
    OutboundPolicy,
    parse_address,
    parse_allow_list,
    parse_ipv4_loosely,
)

OPEN = OutboundPolicy()
STRICT = OutboundPolicy(allow_private=False)


@pytest.mark.parametrize(
    "spelling",
    [
        "169.254.169.254",
        "2852039166",
        "0xa9fea9fe",
        "0XA9FEA9FE",
        "0251.0376.0251.0376",
        "169.254.43518",
        "0xa9.0xfe.0xa9.0xfe",
        "::ffff:169.254.169.254",
        "[::ffff:a9fe:a9fe]",
        "::ffff:0:a9fe:a9fe",
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::1",
        "fe80::1",
        "fe80::1%eth0",
        "fd00:ec2::254",
        "100.100.100.200",
    ],
)
def test_every_spelling_of_a_metadata_address_is_always_refused(spelling: str) -> None:
    for policy in (OPEN, STRICT, OutboundPolicy(allowed_networks=(ipaddress.ip_network("::/0"),))):
        with pytest.raises(OutboundRefused) as refused:
            policy.check_literal(spelling)
        assert "never allowed" in refused.value.message
        assert refused.value.status_code == 422


@pytest.mark.parametrize(
    "name", ["metadata.google.internal", "METADATA.GOOGLE.INTERNAL.", "metadata.goog", "metadata"]
)
def test_metadata_names_are_refused_without_a_lookup(name: str) -> None:
    with pytest.raises(OutboundRefused):
        OPEN.check_literal(name)
    listed = OutboundPolicy(allowed_names=frozenset({"metadata.google.internal"}))
    with pytest.raises(OutboundRefused):
        listed.check_literal(name)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.1", "2130706433", "10.1.2.3", "172.16.0.1", "192.168.1.1", "::1",
     "fc00::1", "100.64.0.1", "0.0.0.0", "::ffff:10.0.0.1", "[::ffff:7f00:1]"],
)  # fmt: skip
def test_private_addresses_follow_the_setting(address: str) -> None:
    assert OPEN.check_literal(address) is not None
    with pytest.raises(OutboundRefused) as refused:
        STRICT.check_literal(address)
    assert "SHIPYARD_OUTBOUND_ALLOW_PRIVATE=false" in refused.value.message
    assert refused.value.details["setting"] == "SHIPYARD_OUTBOUND_ALLOW_PRIVATE"


def test_public_addresses_pass_either_way() -> None:
    for address in ("140.82.112.3", "2606:4700::1111", "8.8.8.8"):
        assert STRICT.check_literal(address) == ipaddress.ip_address(address)


def test_loose_ipv4_parsing_matches_the_c_resolver() -> None:
    for text in ("2852039166", "0xa9fea9fe", "0251.0376.0251.0376", "169.254.43518"):
        assert parse_ipv4_loosely(text) == socket_inet_aton(text)
    for text in ("256.1.1.1", "1.2.3.4.5", "08.1.1.1", "1_0.0.0.1", "example", "", "1..2"):
        assert parse_ipv4_loosely(text) is None
    assert parse_address("example.com") is None


def socket_inet_aton(text: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(socket.inet_aton(text))


def test_the_allow_list_takes_cidrs_addresses_names_and_domains() -> None:
    networks, names, domains = parse_allow_list(" 10.0.0.0/8, 192.168.1.7 ,git.corp, *.ci.corp,")
    assert networks == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("192.168.1.7"))
    assert names == frozenset({"git.corp"})
    assert domains == (".ci.corp",)
    policy = OutboundPolicy.from_settings(
        Settings(outbound_allow_private=False, outbound_allow="10.0.0.0/8,*.ci.corp")
    )
    assert policy.check_literal("10.9.8.7") is not None
    with pytest.raises(OutboundRefused):
        policy.check_literal("192.168.0.1")
    assert policy.name_is_listed("jenkins.ci.corp") and not policy.name_is_listed("ci.corp.evil")
    with pytest.raises(ValueError, match="SHIPYARD_OUTBOUND_ALLOW"):
        parse_allow_list("10.0.0.0/8, not a host!")


async def test_names_are_checked_after_resolution() -> None:
    assert ipaddress.ip_address("127.0.0.1") in await OPEN.check_host("localhost", 80)
    with pytest.raises(OutboundRefused) as refused:
        await STRICT.check_host("localhost", 80)
    assert "resolves to a private address" in refused.value.message
    listed = OutboundPolicy(allow_private=False, allowed_names=frozenset({"localhost"}))
    assert await listed.check_host("localhost")
    with pytest.raises(socket.gaierror):
        await OPEN.check_host("no-such-host.invalid")


async def test_urls_other_than_http_are_refused_and_validation_names_the_field() -> None:
    for url in ("ftp://example.com/x", "file:///etc/passwd", "gopher://127.0.0.1:70/"):
        with pytest.raises(OutboundRefused):
            await OPEN.check_url(url)
    with pytest.raises(ValidationFailed) as failed:
        await STRICT.validate_url("http://127.0.0.1:8080", field="url")
    assert failed.value.field == "url" and failed.value.code == "outbound_refused"
    # A name that does not resolve passes validation: the connection will say so.
    await STRICT.validate_url("https://no-such-host.invalid/", field="url")


async def test_the_http_client_refuses_before_connecting() -> None:
    async with build_http_client(Settings(outbound_allow_private=False)) as http:
        with pytest.raises(OutboundRefused):
            await http.get("http://127.0.0.1:9/")
        with pytest.raises(OutboundRefused):
            await http.get("http://metadata.google.internal/computeMetadata/v1/")
    async with build_http_client(Settings()) as http:
        with pytest.raises(OutboundRefused):
            await http.get("http://2852039166/latest/meta-data/")
        with pytest.raises(httpx.ConnectError):
            await http.get("http://no-such-host.invalid/")


def test_git_is_pinned_to_the_checked_addresses_and_to_http() -> None:
    addresses = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    assert curl_resolve("https://git.example/a.git", addresses) == "git.example:443:127.0.0.1,[::1]"
    assert curl_resolve("http://git.example:8080/a.git", addresses[:1]) == (
        "git.example:8080:127.0.0.1"
    )
    assert curl_resolve("http://127.0.0.1:8080/a.git", addresses[:1]) is None
    env = git_environment("https://git.example/a.git", None, addresses=addresses)
    config = {
        env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"]
        for i in range(int(env["GIT_CONFIG_COUNT"]))
    }
    assert env["GIT_ALLOW_PROTOCOL"] == "http:https"
    assert config["http.followRedirects"] == "false"
    assert config["protocol.allow"] == "never"
    assert config["http.curloptResolve"] == "git.example:443:127.0.0.1,[::1]"
