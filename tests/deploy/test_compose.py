"""docker-compose.yml parses, sets only variables the settings know, and its services, health
checks and start-up conditions are consistent (checked without a Docker engine)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from deploytools import REPO

from ingest.settings import settings_table

COMPOSE = REPO / "docker-compose.yml"
DATABASE_ALIASES = {"DATABASE_URL", "NETWORK_DATABASE_URL"}
INGEST_IMAGE_COMMANDS = {"run", "migrate", "simulate", "schedule", "status", "dlq"}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def ingest_services() -> dict[str, dict[str, Any]]:
    """Services that run the worker image (built from deploy/Dockerfile)."""
    return {
        name: svc
        for name, svc in services().items()
        if svc.get("build", {}).get("dockerfile") == "deploy/Dockerfile"
    }


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def depends_on(svc: dict[str, Any]) -> dict[str, str]:
    deps = svc.get("depends_on", {})
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def has_healthcheck(svc: dict[str, Any]) -> bool:
    check = svc.get("healthcheck")
    return bool(check) and not check.get("disable", False) and bool(check.get("test"))


def test_compose_file_parses_and_defines_the_stack() -> None:
    assert {"postgres", "kafka", "migrate", "worker", "simulator", "prometheus", "grafana"} <= set(
        services()
    )
    assert services()["kafka"]["image"].startswith("apache/kafka:")
    assert "KAFKA_PROCESS_ROLES" in environment(services()["kafka"])  # KRaft, no ZooKeeper


@pytest.mark.parametrize("service", sorted(services()))
def test_compose_sets_only_variables_the_settings_know(service: str) -> None:
    known = {row.variable for row in settings_table()} | DATABASE_ALIASES
    env = environment(services()[service])
    is_ingest = service in ingest_services()
    unknown = sorted(
        name for name in env if (is_ingest or name.startswith("INGEST_")) and name not in known
    )
    assert not unknown, f"{service} sets {unknown}, which no setting reads"


def test_every_dependency_exists_and_can_meet_its_condition() -> None:
    svcs = services()
    for name, svc in svcs.items():
        for target, condition in depends_on(svc).items():
            assert target in svcs, f"{name} depends on missing service {target}"
            if condition == "service_healthy":
                assert has_healthcheck(svcs[target]), f"{target} has no healthcheck for {name}"
            elif condition == "service_completed_successfully":
                # A one-shot: it must not be restarted, or it never "completes".
                assert svcs[target].get("restart", "no") == "no", target
            else:
                assert condition == "service_started", f"{name}: {condition}"


def test_dependencies_have_no_cycle() -> None:
    graph = {name: set(depends_on(svc)) for name, svc in services().items()}
    done: set[str] = set()
    while graph.keys() - done:
        ready = {n for n in graph.keys() - done if graph[n] <= done}
        assert ready, f"cycle among {sorted(graph.keys() - done)}"
        done |= ready


def test_workers_wait_for_migrate_and_run_two_replicas_within_the_grace_period() -> None:
    worker = services()["worker"]
    assert worker["command"] == ["run"]
    assert worker["deploy"]["replicas"] == 2
    assert depends_on(worker)["migrate"] == "service_completed_successfully"
    assert services()["migrate"]["command"] == ["migrate"]
    grace = float(environment(worker).get("INGEST_SHUTDOWN_GRACE_S", "25"))
    stop = re.fullmatch(r"(\d+)s", worker["stop_grace_period"])
    assert stop and int(stop.group(1)) > grace + 5


def test_worker_image_services_run_ingest_commands_and_reach_the_broker_and_database() -> None:
    for name, svc in ingest_services().items():
        assert svc["command"][0] in INGEST_IMAGE_COMMANDS, name
        env = environment(svc)
        host = env["INGEST_KAFKA_BOOTSTRAP_SERVERS"].split(":")[0]
        assert host in services(), f"{name}: broker {host} is no service"
        db_host = re.search(r"@([^:/]+)", env["INGEST_DATABASE_URL"])
        assert db_host and db_host.group(1) in services(), name
        # Only the worker serves HTTP; the image's /healthz check would fail elsewhere.
        if name != "worker":
            assert svc["healthcheck"] == {"disable": True}, name


def test_prometheus_scrapes_the_worker_service_on_its_http_port_and_loads_the_alerts() -> None:
    prometheus = services()["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    assert "alerts.yml" in config["rule_files"]
    (job,) = config["scrape_configs"]
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["worker"]
    assert str(sd["port"]) == environment(services()["worker"])["INGEST_HTTP_PORT"]


def test_bind_mounts_and_build_context_exist_in_the_repository() -> None:
    for name, svc in services().items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
    for svc in ingest_services().values():
        assert (REPO / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()
