"""Group-to-role mapping: from a person's groups and the tenant's ordered rules to a role."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

# Higher wins when several rules match.
ROLE_RANK = {"viewer": 1, "developer": 2, "admin": 3}


@dataclass(frozen=True)
class Rule:
    id: UUID
    position: int
    group: str
    role: str
    # None: every provider of the tenant.
    provider_id: UUID | None = None


@dataclass(frozen=True)
class RoleDecision:
    """The role a person gets (None: refused), and which rule (or the default) decided it."""

    role: str | None
    rule: Rule | None
    source: str | None  # "rule" | "default" | None (refused)
    # Every rule that matched, in order (the explanation shows them).
    matched: tuple[Rule, ...]


def _same_group(rule_group: str, groups: set[str]) -> bool:
    return rule_group.casefold() in groups


def decide_role(
    *,
    groups: Iterable[str],
    rules: Sequence[Rule],
    default_role: str | None,
    provider_id: UUID,
) -> RoleDecision:
    """The highest role among the rules whose group the person is in (the first such rule in
    order is the one credited), else the tenant's default role, else refusal.

    Group names compare case-insensitively (LDAP is; IdPs differ in how they spell groups).
    """
    held = {group.casefold() for group in groups}
    ordered = sorted(rules, key=lambda rule: (rule.position, str(rule.id)))
    matched = tuple(
        rule
        for rule in ordered
        if (rule.provider_id is None or rule.provider_id == provider_id)
        and _same_group(rule.group, held)
    )
    if matched:
        best = max(matched, key=lambda rule: (ROLE_RANK[rule.role], -matched.index(rule)))
        return RoleDecision(role=best.role, rule=best, source="rule", matched=matched)
    if default_role is not None:
        return RoleDecision(role=default_role, rule=None, source="default", matched=())
    return RoleDecision(role=None, rule=None, source=None, matched=())
