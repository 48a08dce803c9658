"""Worker pools, the pure parts: pool names, queues, which hosts run where, the file limit."""

from __future__ import annotations

import resource
from uuid import uuid4

from shipyard.deployments.pools import split_by_pool
from shipyard.jobs import worker_queues
from shipyard.worker import parse_pools, raise_open_file_limit


def test_pool_names_come_repeated_or_comma_separated() -> None:
    assert parse_pools(["dc-east", "dc-west, dc-east", " ,"]) == ["dc-east", "dc-west"]
    assert parse_pools("dc-east,dc-west") == ["dc-east", "dc-west"]
    assert parse_pools("") == []


def test_a_pooled_worker_also_listens_to_the_default_queue() -> None:
    assert worker_queues([]) == ["default"]
    assert worker_queues(["b", "a", "b"]) == ["default", "pool:a", "pool:b"]


def test_hosts_without_a_pool_and_of_served_pools_run_here_in_the_runs_order() -> None:
    plain, east, west, east2 = (uuid4() for _ in range(4))
    pools = {plain: None, east: "east", west: "west", east2: "east"}
    here, elsewhere = split_by_pool([plain, east, west, east2], pools, frozenset())
    assert here == [plain]
    assert elsewhere == {"east": [east, east2], "west": [west]}
    here, elsewhere = split_by_pool([plain, east, west, east2], pools, frozenset({"east"}))
    assert here == [plain, east, east2]
    assert elsewhere == {"west": [west]}


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = raise_open_file_limit()
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (soft, hard)
    assert soft == hard or hard == resource.RLIM_INFINITY
