"""The alert rules and the scrape config pass promtool, the worker's real /metrics page passes
promtool's linter, and every metric the alerts query is one the worker exports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploytools import REPO, Tool
from promql import SYNTHETIC, exported_names, metric_names

ALERTS = REPO / "deploy/prometheus/alerts.yml"
PROMETHEUS_CONFIG = REPO / "deploy/prometheus/prometheus.yml"

#: What the issue asks alerts for, by alert name.
REQUIRED_ALERTS = {
    "IngestConsumerLagGrowing",
    "IngestDeadLettersHigh",
    "IngestFlushFailing",
    "IngestNoRowsWritten",
    "IngestPartitionsAheadLow",
    "IngestSchedulerJobFailing",
    "IngestWorkerNotReady",
}


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_alert_rules_pass_promtool_check_rules(promtool: Tool) -> None:
    proc = promtool.run("check", "rules", str(ALERTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_rejects_a_broken_rule(promtool: Tool, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("groups:\n- name: x\n  rules:\n  - alert: A\n    expr: sum(rate(x[5m]\n")
    assert promtool.run("check", "rules", str(broken)).returncode != 0


def test_scrape_config_passes_promtool_check_config(promtool: Tool) -> None:
    proc = promtool.run("check", "config", str(PROMETHEUS_CONFIG))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_required_alert_exists_with_severity_and_runbook() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    assert set(by_name) >= REQUIRED_ALERTS
    for name, rule in by_name.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        for key in ("summary", "description", "runbook"):
            assert rule["annotations"].get(key, "").strip(), f"{name} has no {key}"


def test_worker_metrics_page_passes_promtool_check_metrics(
    promtool: Tool, worker_metrics: str
) -> None:
    proc = promtool.run_with_input(worker_metrics, "check", "metrics")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_queries_only_metrics_the_worker_exports(
    rule: dict[str, Any], worker_metrics: str
) -> None:
    unknown = metric_names(rule["expr"]) - exported_names(worker_metrics) - SYNTHETIC
    assert not unknown, f"{rule['alert']} queries {sorted(unknown)}, not on /metrics"


def test_alerts_name_the_scheduler_job_label_as_prometheus_stores_it() -> None:
    # The scheduler's `job` label collides with the scrape job's; Prometheus renames it.
    for rule in rules():
        if "ingest_job_" in rule["expr"]:
            assert re.search(r"\bscheduler_job\b", rule["expr"]), rule["alert"]
            assert not re.search(r"(?<!exported_)\bjob\b", rule["expr"]), rule["alert"]
