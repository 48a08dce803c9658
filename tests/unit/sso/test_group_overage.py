"""Which claims count as Entra ID's group overage: only a groups claim sourced on Microsoft
Graph (any cloud's, or the provider's own ``graph_url``) is read from Graph."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.sso.oidc import group_overage

PUBLIC = "https://graph.microsoft.com"


def sourced(endpoint: str, claim_name: str = "groups") -> dict[str, Any]:
    return {
        "sub": "x",
        "_claim_names": {claim_name: "src1"},
        "_claim_sources": {"src1": {"endpoint": endpoint}},
    }


@pytest.mark.parametrize(
    ("claims", "groups_claim", "graph_url", "expected"),
    [
        # Entra ID's own marker, public cloud (the legacy Azure AD Graph address).
        (sourced("https://graph.windows.net/t/users/u/getMemberObjects"), "groups", PUBLIC, True),
        # A national cloud's Graph.
        (sourced("https://graph.microsoft.us/v1.0/users/u"), "groups", PUBLIC, True),
        # The provider's own Graph (a test or a proxy), by its host.
        (sourced("http://127.0.0.1:9/x"), "groups", "http://127.0.0.1:9", True),
        # Another provider's distributed claims: not followed.
        (sourced("https://claims.example.com/groups"), "groups", PUBLIC, False),
        # The groups overflowed, but the rules read another claim (app roles).
        (sourced("https://graph.windows.net/t/users/u/getMemberObjects"), "roles", PUBLIC, False),
        # No sources at all, or a malformed one.
        ({"sub": "x", "groups": ["a"]}, "groups", PUBLIC, False),
        (
            {"_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": "x"}},
            "groups",
            PUBLIC,
            False,
        ),
    ],
)
def test_group_overage_is_recognised_only_on_microsoft_graph(
    claims: dict[str, Any], groups_claim: str, graph_url: str, expected: bool
) -> None:
    assert group_overage(claims, groups_claim, graph_url=graph_url) is expected
