"""The one table of a run, the targets it is held to, and the files in bench/results/."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from bench.harness import BenchReport, Latency, Result


@dataclass
class Target:
    name: str
    wanted: str
    measured: str
    met: bool | None  # None: not measured in this run


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.nan


def targets(report: BenchReport) -> list[Target]:
    worker, raw = report.get("worker"), report.get("raw COPY")
    naive, quix = report.get("naive"), report.get("quix")
    w = worker.records_per_s if worker else 0.0
    out: list[Target] = []

    def versus(name: str, other: Result | None, factor: float, kind: str) -> None:
        if other is None or other.records_per_s <= 0:
            out.append(Target(name, kind, "not measured", None))
            return
        r = _ratio(w, other.records_per_s)
        out.append(Target(name, kind, f"{r:.2f}x", r >= factor))

    versus("worker vs raw COPY", raw, 0.7, "≥ 0.7x")
    versus("worker vs naive", naive, 20, "≥ 20x")
    versus("worker vs Quix Streams", quix, 3, "≥ 3x")
    lat = report.latency
    if lat is None:
        out.append(Target("p99 latency at half load", "≤ 1 s", "not measured", None))
    else:
        out.append(
            Target("p99 latency at half load", "≤ 1 s", f"{lat.p99_s:.3f} s", lat.p99_s <= 1.0)
        )
    big = next((r for r in report.results if " M backlog" in r.name), None)
    if big is not None and big.peak_rss_mib is not None:
        size = big.name.split(", ")[1]
        is_5m = report.config.big_events >= 5_000_000
        out.append(
            Target(
                "peak RSS with a 5 M backlog",
                "≤ 256 MiB",
                f"{big.peak_rss_mib:.0f} MiB ({size})",
                big.peak_rss_mib <= 256 if is_5m else None,
            )
        )
    elif worker is not None and worker.peak_rss_mib is not None:
        out.append(
            Target(
                "peak RSS with a 5 M backlog",
                "≤ 256 MiB",
                f"{worker.peak_rss_mib:.0f} MiB with a {report.config.events:,} backlog only",
                None,
            )
        )
    mal = next((r for r in report.results if "malformed" in r.name), None)
    if mal is None or worker is None:
        out.append(Target("2% malformed vs clean", "≥ 90%", "not measured", None))
    else:
        r = _ratio(mal.records_per_s, w)
        out.append(Target("2% malformed vs clean", "≥ 90%", f"{r:.0%}", r >= 0.9))
    return out


def _fmt(x: float, digits: int = 0) -> str:
    return "-" if math.isnan(x) or x <= 0 else f"{x:,.{digits}f}"


def table(report: BenchReport) -> str:
    raw, worker = report.get("raw COPY"), report.get("worker")
    head = (
        "| contender | records | seconds | records/s | rows/s | x raw COPY | x worker "
        "| peak RSS MiB | notes |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in report.results:
        lines.append(
            f"| {r.name} | {r.records:,} | {r.seconds:.2f} | {_fmt(r.records_per_s)} "
            f"| {_fmt(r.rows_per_s)} "
            f"| {_fmt(_ratio(r.records_per_s, raw.records_per_s) if raw else math.nan, 2)} "
            f"| {_fmt(_ratio(r.records_per_s, worker.records_per_s) if worker else math.nan, 2)} "
            f"| {_fmt(r.peak_rss_mib or math.nan)} | {r.note} |"
        )
    return "\n".join(lines)


def latency_lines(report: BenchReport) -> list[str]:
    lat = report.latency
    lines = (
        ["Latency at half load: not measured."]
        if lat is None
        else [_latency_line(f"Latency at half load ({lat.rate:,.0f} records/s asked, ", lat)]
    )
    for steady in report.steady:
        lines.append("")
        lines.append(_latency_line(f"At a steady {steady.rate:,.0f} records/s (", steady))
    return lines


def _latency_line(head: str, lat: Latency) -> str:
    hist = ""
    if lat.hist_p50_s is not None and lat.hist_p99_s is not None:
        hist = (
            f"; the worker's own histogram `ingest_end_to_end_latency_seconds` says "
            f"p50 ≈ {lat.hist_p50_s:.3f} s, p99 ≈ {lat.hist_p99_s:.3f} s (bucket-interpolated)"
        )
    return (
        f"{head}{lat.achieved_rate:,.0f} produced, {lat.records:,} records): event ts → "
        f"offsets committed p50 {lat.p50_s:.3f} s, p99 {lat.p99_s:.3f} s, "
        f"max {lat.max_s:.3f} s{hist}."
    )


def target_lines(report: BenchReport) -> list[str]:
    lines = ["| target | wanted | measured | met |", "|---|---|---|---|"]
    for t in targets(report):
        met = "n/a" if t.met is None else ("yes" if t.met else "**NO**")
        lines.append(f"| {t.name} | {t.wanted} | {t.measured} | {met} |")
    return lines


def markdown(report: BenchReport) -> str:
    m = report.machine
    cfg = report.config
    settings = ", ".join(f"{k}={v}" for k, v in sorted(cfg.worker_env.items())) or "defaults"
    parts = [
        f"# Benchmark run {report.started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {m.get('nproc')} CPUs ({m.get('cpu', '?')}), {m.get('ram', '?')} RAM, "
        f"Linux {m.get('kernel', '?')}, Python {m.get('python')}.",
        f"Backlog: {cfg.events:,} records (seed {cfg.seed}), {cfg.partitions} partitions per "
        f"topic; naive sample {cfg.naive_events:,}; worker settings: {settings}"
        + (f"; raw COPY and worker run {cfg.pairs} times each, in turn." if cfg.pairs > 1 else "."),
        "",
        table(report),
        "",
        *latency_lines(report),
        "",
        *target_lines(report),
        "",
        *(f"* {c}" for c in report.checks),
    ]
    return "\n".join(parts) + "\n"


def plot(report: BenchReport, path: Path) -> bool:
    """Throughput over time per contender; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(10, 5))
    for r in report.results:
        if r.series:
            xs, ys = zip(*r.series, strict=True)
            ax.plot(xs, ys, label=f"{r.name} ({r.records_per_s:,.0f}/s)")
    ax.set_xlabel("seconds since first progress")
    ax.set_ylabel("records/s (1 s windows)")
    ax.set_yscale("log")
    ax.set_title(
        f"mesh-ingest benchmark, {report.started:%Y-%m-%d}, {report.config.events:,} records"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(report: BenchReport, out_dir: Path) -> tuple[Path, Path | None]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"bench-{report.started:%Y%m%d-%H%M%S}-{report.config.events}"
    md = out_dir / f"{stem}.md"
    md.write_text(markdown(report), encoding="utf-8")
    png = out_dir / f"{stem}.png"
    return md, (png if plot(report, png) else None)
