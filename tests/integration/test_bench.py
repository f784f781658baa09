"""The bench harness runs end to end on a small backlog, so it cannot rot (issue 5).

Real PostgreSQL and Kafka from the session's fixtures; every contender that installs here
except Quix Streams (its virtualenv takes a minute to build on first use), with small flushes
so the worker's drain spans several polls. Asserts the shape of the result, not speed: a
shared 2-core CI machine says nothing about throughput.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import report  # noqa: E402
from bench.harness import BenchConfig, Result, _median_of, find_psql, run  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def _have_psql() -> bool:
    try:
        find_psql()
    except FileNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _have_psql(), reason="raw COPY needs the psql client")
async def test_bench_harness_end_to_end(
    pg_admin_url: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    cfg = BenchConfig(
        events=2000,
        naive_events=300,
        naive_time_limit_s=20,
        quix=False,
        replicas=False,
        latency_s=2.0 if _have_confluent() else 0.0,
        worker_env={"INGEST_BATCH_MAX_ROWS": "200", "INGEST_BATCH_MAX_AGE_MS": "50"},
        out_dir=tmp_path,
        worker_timeout_s=60,
        pairs=2,
    )
    rep = await run(cfg, pg_admin_url, kafka_bootstrap, run_id=topic_prefix.rstrip("."), log=print)

    names = [r.name for r in rep.results]
    assert names[:3] == ["raw COPY", "worker", "worker, 2% malformed"]
    assert "naive" in names
    for r in rep.results:
        assert r.records > 0, r
        assert r.records_per_s > 0, r
        assert r.rows_per_s > 0, r
        assert not any(r.exit_codes), r
    worker = rep.get("worker")
    assert worker is not None and worker.peak_rss_mib is not None and worker.peak_rss_mib > 0
    # Two pairs ran; the table holds one row each, the median, naming the spread.
    assert names.count("worker") == names.count("raw COPY") == 1
    assert "median of 2 runs" in worker.note
    assert "median of 2 runs" in rep.results[0].note
    # The worker ends with the same rows per table as the bulk load of the same events.
    assert rep.checks and rep.checks[0].endswith("yes"), rep.checks
    malformed = rep.get("worker, 2% malformed")
    assert malformed is not None and "dead letters" in malformed.note
    if cfg.latency_s:
        assert rep.latency is not None and rep.latency.records > 0
        assert 0 < rep.latency.p50_s <= rep.latency.p99_s

    md, png = report.write(rep, tmp_path)
    text = md.read_text()
    assert "| raw COPY |" in text and "| worker |" in text and "| naive |" in text
    assert "worker vs raw COPY" in text
    if png is not None:
        assert png.stat().st_size > 0


def test_the_median_run_is_reported_with_the_spread_of_all_runs() -> None:
    runs = [Result("worker", 100_000, 0, seconds, None) for seconds in (1.0, 2.0, 4.0, 0.5)]
    median = _median_of(runs)
    # Four runs at 25k, 50k, 100k and 200k records/s: the lower middle one.
    assert median.seconds == 2.0
    assert median.note == "median of 4 runs (25,000-200,000 records/s)"
    single = Result("worker", 10, 0, 1.0, None, note="as it was")
    assert _median_of([single]) is single and single.note == "as it was"


def _have_confluent() -> bool:
    try:
        import confluent_kafka  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True
