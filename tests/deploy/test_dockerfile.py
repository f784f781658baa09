"""deploy/Dockerfile passes hadolint and has the shape the deployment relies on: multi-stage,
nothing built in the final stage, a non-root numeric USER, a /healthz HEALTHCHECK, OCI labels,
and ``ingest`` as entrypoint, a console script that exists and runs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from deploytools import REPO, Tool

DOCKERFILE = REPO / "deploy/Dockerfile"
BUILD_TOOLS = re.compile(r"\b(apt-get|apk|gcc|make|build-essential|pip install)\b")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_dockerfile_passes_hadolint(hadolint: Tool) -> None:
    proc = hadolint.run("--failure-threshold", "info", str(DOCKERFILE))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_flags_a_bad_dockerfile(hadolint: Tool, tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\n")
    assert hadolint.run(str(bad)).returncode != 0


def test_image_is_multi_stage_and_the_final_stage_builds_nothing() -> None:
    assert sum(1 for word, _ in instructions() if word == "FROM") >= 2
    for word, args in final_stage():
        if word == "RUN":
            assert not BUILD_TOOLS.search(args), args
    copies = [args for word, args in final_stage() if word == "COPY"]
    assert copies and all(args.startswith("--from=") for args in copies), copies


def test_final_stage_runs_as_a_numeric_non_root_user_with_a_healthcheck_and_labels() -> None:
    stage = final_stage()
    users = [args for word, args in stage if word == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    (check,) = [args for word, args in stage if word == "HEALTHCHECK"]
    assert "/healthz" in check and "INGEST_HTTP_PORT" in check
    labels = " ".join(args for word, args in stage if word == "LABEL")
    for key in ("title", "description", "version", "revision"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_image_keeps_the_migrations_beside_the_package() -> None:
    # `ingest migrate` reads <package dir>/../schema; the editable install keeps /app/ingest.
    sources = [args.split() for word, args in instructions() if word == "COPY"]
    assert ["schema", "./schema"] in sources and ["ingest", "./ingest"] in sources
    assert any("-e ." in args for word, args in instructions() if word == "RUN")
    from ingest.migrate import DEFAULT_MIGRATIONS_DIR

    assert DEFAULT_MIGRATIONS_DIR == REPO / "schema"


def test_entrypoint_is_the_ingest_console_script_and_it_runs() -> None:
    stage = final_stage()
    (entrypoint,) = [json.loads(args) for word, args in stage if word == "ENTRYPOINT"]
    (cmd,) = [json.loads(args) for word, args in stage if word == "CMD"]
    assert entrypoint == ["ingest"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["ingest"] == "ingest.cli:app"
    script = shutil.which("ingest", path=str(Path(sys.executable).parent))
    assert script is not None, "the ingest console script is not installed"
    proc = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert re.search(rf"\b{cmd[0]}\b", proc.stdout), f"`ingest {cmd[0]}` is not a command"


def test_dockerignore_sends_only_what_the_image_copies() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line.removeprefix("!").rstrip("/") for line in lines if line.startswith("!")}
    copied = {
        part.rstrip("/")
        for word, args in instructions()
        if word == "COPY" and not args.startswith("--from=")
        for part in args.split()[:-1]
    }
    assert copied <= allowed
