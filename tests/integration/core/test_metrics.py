"""/metrics on serve's app and on a worker's own port, after one deployment on a real sshd host."""

from __future__ import annotations

import re
import socket
from collections import defaultdict

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from shipyard.runtime import Runtime
from shipyard.server import worker_metrics
from tests.builders.deployments import DeployBuilder
from tests.support import canary
from tests.support.git_server import GitFile

METRICS_TOKEN = "metrics-token-" + "4c1d9e0b7a"

TYPES = {
    "shipyard_deployments_started": "counter",
    "shipyard_deployments_finished": "counter",
    "shipyard_deployment_duration_seconds": "histogram",
    "shipyard_script_duration_seconds": "histogram",
    "shipyard_log_lines_stored": "counter",
    "shipyard_ssh_connect_seconds": "histogram",
    "shipyard_ssh_connect_failures": "counter",
    "shipyard_provider_requests": "counter",
    "shipyard_provider_errors": "counter",
    "shipyard_provider_rate_limit_remaining": "gauge",
    "shipyard_http_requests": "counter",
    "shipyard_http_request_duration_seconds": "histogram",
    "shipyard_notification_deliveries": "counter",
    "shipyard_runs_due": "gauge",
    "shipyard_runs_due_oldest_age_seconds": "gauge",
    "shipyard_workers_alive": "gauge",
    "shipyard_jobs_running": "gauge",
}
# Label sets a metric may have at most (statuses, error codes, provider types); by route
# template, the method and status pairs one route may show over a whole worker's tests.
MAX_LABEL_SETS = 300
MAX_SETS_PER_ROUTE = 60
ID_LIKE = re.compile(
    r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}|^\d+$|/\d+(/|$)", re.I
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


Families = dict[str, tuple[str, list[tuple[str, dict[str, str], float]]]]


def parse(text: str) -> Families:
    return {
        family.name: (family.type, [(s.name, s.labels, s.value) for s in family.samples])
        for family in text_string_to_metric_families(text)
    }


def value(families: Families, name: str, sample: str, **labels: str) -> float:
    return sum(
        float(v)
        for sample_name, sample_labels, v in families[name][1]
        if sample_name == sample and all(sample_labels.get(k) == x for k, x in labels.items())
    )


def check_bounded(families: Families) -> None:
    """Labels hold bounded values only: never an id, few sets per metric, and per route template
    (the registry spans every test the process ran; the app's routes grow with the product)."""
    for name, (kind, samples) in families.items():
        if not name.startswith("shipyard_"):
            continue
        assert kind == TYPES[name], (name, kind)
        label_sets: dict[str, set[tuple[tuple[str, str], ...]]] = defaultdict(set)
        for sample_name, labels, _ in samples:
            plain = {k: v for k, v in labels.items() if k != "le"}
            label_sets[sample_name].add(tuple(sorted(plain.items())))
            for key, label_value in plain.items():
                if key == "status" and label_value.isdigit():
                    assert 100 <= int(label_value) < 600, (name, labels)  # an HTTP status
                    continue
                assert not ID_LIKE.search(label_value), (name, key, label_value)
        for sample_name, sets in label_sets.items():
            by_route: dict[str, int] = defaultdict(int)
            for label_set in sets:
                route = dict(label_set).get("route")
                by_route[route or ""] += 1
            if len(by_route) > 1 or "" not in by_route:
                worst = max(by_route.items(), key=lambda item: item[1])
                assert worst[1] <= MAX_SETS_PER_ROUTE, (sample_name, worst)
            else:
                assert len(sets) <= MAX_LABEL_SETS, (sample_name, len(sets))


async def test_serve_and_worker_metrics_after_a_deployment(
    deploy: DeployBuilder, runtime: Runtime
) -> None:
    repo = await deploy.repo({"hello.sh": GitFile('#!/bin/sh\necho "hello"\n')})
    hosts = await deploy.hosts(1)
    port = free_port()
    async with worker_metrics(runtime, port=port), httpx.AsyncClient() as http:
        done = await deploy.run(repo, hosts, ("hello.sh", []))
        assert done["status"] == "success", done
        # One request that is refused, so a 4xx shows under its route template.
        assert (await deploy.client.get(f"/api/v1/deployments/{hosts[0]['id']}")).status_code
        served = await deploy.client.get("/metrics")
        scraped = await http.get(f"http://127.0.0.1:{port}/metrics")
        assert served.status_code == scraped.status_code == 200
        assert served.headers["content-type"].startswith("text/plain")

        # With a token set, a scrape must send it (the worker's port and serve's app alike).
        canary.remember(METRICS_TOKEN)
        runtime.settings = runtime.settings.model_copy(
            update={"metrics_token": SecretStr(METRICS_TOKEN)}
        )
        for get in (http.get, deploy.client.get):
            url = f"http://127.0.0.1:{port}/metrics" if get == http.get else "/metrics"
            assert (await get(url)).status_code == 401
            assert (await get(url, headers={"Authorization": "Bearer wrong"})).status_code == 401
            good = await get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
            assert good.status_code == 200

    for text in (served.text, scraped.text):
        families = parse(text)
        assert set(TYPES) <= set(families), set(TYPES) - set(families)
        check_bounded(families)
        assert value(families, "shipyard_deployments_started", "shipyard_deployments_started_total")
        assert value(
            families,
            "shipyard_deployments_finished",
            "shipyard_deployments_finished_total",
            status="success",
        )
        for histogram in (
            "shipyard_deployment_duration_seconds",
            "shipyard_script_duration_seconds",
            "shipyard_ssh_connect_seconds",
        ):
            assert value(families, histogram, f"{histogram}_count") >= 1, histogram
        assert value(families, "shipyard_log_lines_stored", "shipyard_log_lines_stored_total") >= 2
        assert value(families, "shipyard_workers_alive", "shipyard_workers_alive") >= 1
        assert value(
            families,
            "shipyard_http_requests",
            "shipyard_http_requests_total",
            route="/api/v1/deployments/{deployment_id}",
            status="200",
        )
    routes = {
        labels["route"]
        for _, labels, _ in parse(served.text)["shipyard_http_requests"][1]
        if "route" in labels
    }
    assert "/api/v1/deployments/{deployment_id}" in routes and "/api/v1/hosts" in routes, routes
