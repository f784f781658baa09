"""``python -m bench``: the whole benchmark, one command, one table (see bench/README.md).

Services: ``--admin-url``/``--bootstrap`` (or INGEST_BENCH_DATABASE_URL and
INGEST_BENCH_KAFKA_BOOTSTRAP); otherwise a local PostgreSQL and Kafka are started from nothing
for the run and stopped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from bench import report as report_mod
from bench.harness import BenchConfig, BenchReport, run


@contextlib.contextmanager
def services(admin_url: str | None, bootstrap: str | None) -> Iterator[tuple[str, str]]:
    admin_url = admin_url or os.environ.get("INGEST_BENCH_DATABASE_URL")
    bootstrap = bootstrap or os.environ.get("INGEST_BENCH_KAFKA_BOOTSTRAP")
    if admin_url and bootstrap:
        yield admin_url, bootstrap
        return
    from ingest.devservices import start_local_services

    print("starting a local PostgreSQL and Kafka for this run", file=sys.stderr)
    with start_local_services() as svc:
        yield admin_url or svc.database_url, bootstrap or svc.kafka_bootstrap


def parse(argv: list[str] | None) -> tuple[BenchConfig, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--events", type=int, default=200_000, help="main backlog (records)")
    p.add_argument("--naive-events", type=int, default=5_000)
    p.add_argument("--big", type=int, default=0, help="also drain a backlog this large (RSS)")
    p.add_argument("--latency-seconds", type=float, default=15.0, help="0 skips the run")
    p.add_argument(
        "--steady-rates",
        default="",
        help="comma-separated records/s: further latency runs at these fixed rates",
    )
    p.add_argument("--no-quix", action="store_true")
    p.add_argument("--no-replicas", action="store_true")
    p.add_argument("--malformed", type=float, default=0.02)
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--profile", action="store_true", help="py-spy the clean worker run")
    p.add_argument(
        "--pairs",
        type=int,
        default=1,
        help="raw COPY and the clean worker this many times each, in turn; medians reported",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="INGEST_X=V",
        help="extra worker setting (repeatable)",
    )
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--admin-url")
    p.add_argument("--bootstrap")
    args = p.parse_args(argv)
    if args.pairs < 1:
        p.error("--pairs must be at least 1")
    extra = dict(item.split("=", 1) for item in args.set)
    cfg = BenchConfig(
        events=args.events,
        naive_events=args.naive_events,
        quix=not args.no_quix,
        malformed=args.malformed,
        replicas=not args.no_replicas,
        latency_s=args.latency_seconds,
        steady_rates=tuple(float(r) for r in args.steady_rates.split(",") if r.strip()),
        big_events=args.big,
        partitions=args.partitions,
        seed=args.seed,
        out_dir=args.out,
        worker_env=extra,
        profile=args.profile,
        pairs=args.pairs,
    )
    return cfg, args


def print_report(rep: BenchReport) -> None:
    print()
    print(report_mod.markdown(rep))
    if rep.profile_path is not None and rep.profile_path.exists():
        print(f"worker profile (py-spy raw, collapsed stacks): {rep.profile_path}")


def main(argv: list[str] | None = None) -> int:
    cfg, args = parse(argv)
    with services(args.admin_url, args.bootstrap) as (admin_url, bootstrap):
        rep = asyncio.run(run(cfg, admin_url, bootstrap, log=lambda m: print(m, file=sys.stderr)))
    print_report(rep)
    if cfg.out_dir is not None:
        md, png = report_mod.write(rep, cfg.out_dir)
        print(f"written: {md}" + (f", {png}" if png else " (no plot: matplotlib missing)"))
    failed = [r for r in rep.results if r.exit_codes and any(r.exit_codes)]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
