"""The Grafana dashboard parses, is provisioned where compose mounts it, covers what ops read,
and queries only metrics the worker's real /metrics page exports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from deploytools import REPO
from promql import SYNTHETIC, exported_names, metric_names

DASHBOARD = REPO / "deploy/grafana/dashboards/mesh-ingest.json"
PROVISIONING = REPO / "deploy/grafana/provisioning"


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def queries() -> list[tuple[str, str]]:
    """(where, expression) for every panel target and templating query."""
    found = [
        (f"panel {panel['title']!r}", target["expr"])
        for panel in panels(dashboard()["panels"])
        for target in panel.get("targets", [])
    ]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            found.append((f"variable {variable['name']}", query.get("query", query)))
    return found


def test_dashboard_json_has_uid_title_and_unique_panel_ids() -> None:
    data = dashboard()
    assert data["uid"] == "mesh-ingest" and data["title"]
    ids = [panel["id"] for panel in panels(data["panels"])]
    assert len(ids) == len(set(ids))


def test_dashboard_covers_throughput_lag_flushes_dead_letters_scheduler_partitions() -> None:
    text = " ".join(expr for _, expr in queries())
    for metric in (
        "ingest_records_consumed_total",
        "ingest_rows_written_total",
        "ingest_consumer_lag",
        "ingest_flush_duration_seconds_bucket",
        "ingest_dead_letters_total",
        "ingest_job_runs_total",
        "ingest_partitions_ahead",
    ):
        assert metric in text, metric


@pytest.mark.parametrize(("where", "expr"), queries(), ids=[w for w, _ in queries()])
def test_dashboard_queries_only_metrics_the_worker_exports(
    where: str, expr: str, worker_metrics: str
) -> None:
    names = metric_names(expr)
    assert names, f"{where}: no metric found in {expr!r}"
    unknown = names - exported_names(worker_metrics) - SYNTHETIC
    assert not unknown, f"{where} queries {sorted(unknown)}, not on /metrics"


def test_every_panel_uses_the_dashboards_datasource_variable() -> None:
    for panel in panels(dashboard()["panels"]):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_provisioning_loads_the_dashboard_and_a_prometheus_datasource() -> None:
    (provider,) = yaml.safe_load((PROVISIONING / "dashboards/mesh-ingest.yml").read_text())[
        "providers"
    ]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = dict(volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"])
    # The provider's path is where compose mounts deploy/grafana/dashboards.
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    (source,) = yaml.safe_load((PROVISIONING / "datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    default = dashboard()["templating"]["list"][0]
    assert default["type"] == "datasource" and default["current"]["value"] == source["uid"]


def test_metric_name_extraction_skips_functions_labels_ranges_and_variables() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, topic) "
        '(rate(a_bucket{topic=~"$t"}[$__rate_interval])))'
        " / on (topic) group_left sum(b_total offset 5m) - time()"
    )
    assert metric_names(expr) == {"a_bucket", "b_total"}


def test_a_misspelled_metric_is_not_among_the_exported_names() -> None:
    page = "# HELP x_total X.\n# TYPE x_total counter\nx_total 1.0\n# TYPE h histogram\n"
    names = exported_names(page)
    assert {"x_total", "h_bucket", "h_count"} <= names
    assert "x" not in names and "h_total" not in names
