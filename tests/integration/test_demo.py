"""``ingest demo`` as a user runs it: starts, stores rows, stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

from pipeline import REPO


def test_demo_stores_rows_and_stops_cleanly_on_sigint(
    migrated_database_url: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    # The services come from the test session (starting a second Kafka would only add time);
    # the demo's own service start-up is the same code the fixtures use.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ingest.cli",
            "demo",
            "--database-url",
            migrated_database_url,
            "--kafka-bootstrap",
            kafka_bootstrap,
            "--topic-prefix",
            topic_prefix,
            "--http-port",
            "0",
            "--rate",
            "500",
            "--nodes",
            "12",
        ],
        cwd=str(REPO),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    stored = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            match = re.search(r"rows stored\s+([\d,]+)", line)
            if match and int(match.group(1).replace(",", "")) > 0:
                stored.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert stored.wait(timeout=90), "no stored rows shown:\n" + "".join(lines[-20:])
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, "".join(lines[-20:])
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=5)
    text = "".join(lines)
    assert "stopped (worker exit 0)" in text
    assert re.search(r"stopped \(worker exit 0\); [\d,]+ rows stored", text)
