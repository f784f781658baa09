"""The Kubernetes manifests parse, validate against the Kubernetes schemas (kubernetes-validate,
strict: unknown fields are errors), and hold together: probes, grace period above the drain
deadline, non-root read-only pods, selectors that match, settings the worker knows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from deploytools import REPO, Tool

from ingest.settings import Settings, settings_table

K8S = REPO / "deploy/k8s"
#: Files that are not Kubernetes API objects of the core schemas.
NOT_CORE = {"kustomization.yaml", "servicemonitor.yaml"}
#: Oldest and newest Kubernetes releases the manifests are checked against.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")


def manifests() -> list[Path]:
    return sorted(K8S.glob("*.yaml"))


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((K8S / name).read_text())
    return doc


def worker_pod() -> dict[str, Any]:
    spec: dict[str, Any] = load("deployment.yaml")["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate_against_the_kubernetes_schemas(
    kubernetes_validate: Tool, version: str
) -> None:
    files = [str(path) for path in manifests() if path.name not in NOT_CORE]
    proc = kubernetes_validate.run("--strict", "-k", version, *files)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(" passed for resource ") == len(files), proc.stdout


def test_validator_rejects_an_unknown_field(kubernetes_validate: Tool, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    service = load("service.yaml")
    service["spec"]["portz"] = service["spec"].pop("ports")
    bad.write_text(yaml.safe_dump(service))
    assert kubernetes_validate.run("--strict", str(bad)).returncode != 0


def test_every_manifest_parses_as_one_object_of_a_kind() -> None:
    for path in manifests():
        docs = list(yaml.safe_load_all(path.read_text()))
        assert len(docs) == 1 and docs[0]["kind"] and docs[0]["apiVersion"], path.name


def test_kustomization_lists_every_manifest_but_the_job_and_the_example_secret() -> None:
    listed = set(load("kustomization.yaml")["resources"])
    expected = {p.name for p in manifests()} - {
        "kustomization.yaml",
        "migrate-job.yaml",
        "secret.example.yaml",
    }
    assert listed == expected


def test_grace_period_exceeds_the_configured_drain_deadline() -> None:
    config = load("configmap.yaml")["data"]
    drain_s = float(config.get("INGEST_SHUTDOWN_GRACE_S", Settings().shutdown_grace_s))
    # After the drain the worker closes its pool (up to 5 s) and its HTTP server.
    assert worker_pod()["terminationGracePeriodSeconds"] > drain_s + 5


def test_worker_has_probes_resources_and_a_locked_down_security_context() -> None:
    pod = worker_pod()
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's USER
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["args"] == ["run"]


def test_migrate_job_runs_migrate_once_with_the_same_configuration() -> None:
    job = load("migrate-job.yaml")["spec"]
    (container,) = job["template"]["spec"]["containers"]
    assert container["args"] == ["migrate"]
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    (worker,) = worker_pod()["containers"]
    assert container["envFrom"] == worker["envFrom"]
    assert container["image"] == worker["image"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_service_pdb_and_servicemonitor_select_the_worker_pods() -> None:
    pod_labels = load("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    service = load("service.yaml")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    pdb = load("pdb.yaml")["spec"]["selector"]["matchLabels"]
    assert pdb.items() <= pod_labels.items()
    monitor = load("servicemonitor.yaml")["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["endpoints"]
    (port,) = service["spec"]["ports"]
    assert endpoint["port"] == port["name"] and endpoint["path"] == "/metrics"
    (container,) = worker_pod()["containers"]
    (container_port,) = container["ports"]
    config = load("configmap.yaml")["data"]
    assert container_port["containerPort"] == port["port"] == int(config["INGEST_HTTP_PORT"])


def test_configmap_and_secret_set_only_variables_the_settings_know() -> None:
    known = {row.variable for row in settings_table()} | {"DATABASE_URL", "NETWORK_DATABASE_URL"}
    names = set(load("configmap.yaml")["data"]) | set(load("secret.example.yaml")["stringData"])
    (container,) = worker_pod()["containers"]
    names |= {item["name"] for item in container.get("env", [])}
    assert not names - known, sorted(names - known)
    refs = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert refs == {load("configmap.yaml")["metadata"]["name"]}
