"""The ``ingest`` command. Thin: parse, build settings, call into the package."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ingest.settings import Settings, SettingsError, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
dlq_app = typer.Typer(no_args_is_help=True, help="List and replay dead letters.")
schema_app = typer.Typer(no_args_is_help=True, help="The wire contract for publishers.")
app.add_typer(dlq_app, name="dlq")
app.add_typer(schema_app, name="schema")


def _settings(**overrides: Any) -> Settings:
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    from ingest.observability import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    return settings


@app.command()
def run(
    no_scheduler: Annotated[
        bool, typer.Option("--no-scheduler", help="Consume only; run jobs elsewhere.")
    ] = False,
    burst: Annotated[
        bool, typer.Option("--burst", help="Exit once every partition is caught up.")
    ] = False,
) -> None:
    """Run the worker (and the scheduler beside it)."""
    from ingest.app import run_worker

    settings = _settings()
    code = asyncio.run(
        run_worker(settings, burst=burst, with_scheduler=False if no_scheduler else None)
    )
    raise typer.Exit(code)


@app.command()
def migrate() -> None:
    """Apply pending schema migrations (safe to run from several replicas at once)."""
    from ingest.migrate import MigrationError, apply_migrations

    settings = _settings()
    try:
        applied = asyncio.run(
            apply_migrations(
                settings.database.dsn,
                partitions=settings.partitions,
                premake=settings.scheduler.premake,
            )
        )
    except MigrationError as exc:
        typer.echo(f"migration refused: {exc}", err=True)
        raise typer.Exit(1) from None
    if applied:
        typer.echo("applied: " + ", ".join(applied))
    else:
        typer.echo("database is up to date")


@app.command()
def schedule(
    once: Annotated[
        str | None, typer.Option("--once", help="Run this job once and exit with its outcome.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="retention: print the plan, change nothing.")
    ] = False,
) -> None:
    """Run the scheduler alone, or one job once."""
    from ingest.scheduler.runner import run_once, run_scheduler

    settings = _settings()
    if once is None:
        raise typer.Exit(asyncio.run(run_scheduler(settings)))
    outcome = asyncio.run(run_once(settings, once, dry_run=dry_run))
    typer.echo(json.dumps(outcome, default=str, indent=2))
    raise typer.Exit(0 if outcome.get("outcome") == "ok" else 1)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Assigned partitions, stored vs end offsets, lag, last flush, job runs."""
    from ingest.status import collect_status

    settings = _settings()
    data = asyncio.run(collect_status(settings))
    if as_json:
        typer.echo(json.dumps(data, default=str, indent=2))
        return
    typer.echo(
        f"group {data['group']}: {len(data['members'])} member(s), total lag {data['total_lag']}"
    )
    for member, parts in data["members"].items():
        typer.echo(f"  {member}: {len(parts)} partition(s) {' '.join(parts)}")
    typer.echo(f"{'topic':<28} {'part':>4} {'stored':>12} {'end':>12} {'lag':>10}  last flush")
    for p in data["partitions"]:
        typer.echo(
            f"{p['topic']:<28} {p['partition']:>4} {p['stored']!s:>12} {p['end']:>12} "
            f"{p['lag']!s:>10}  {p['last_flush'] or '-'}"
        )
    for table, info in data["partitions_ahead"].items():
        typer.echo(f"partitions ahead {table}: {info['ahead']} (until {info['covered_until']})")
    for job in data["jobs"]:
        typer.echo(
            f"job {job['job']}: {job['outcome']} at {job['started_at']}"
            + (f" ({job['error']})" if job["error"] else "")
        )
    if data["dead_letters"]:
        typer.echo(
            "dead letters: " + ", ".join(f"{k}={v}" for k, v in data["dead_letters"].items())
        )


@dlq_app.command("list")
def dlq_list(
    reason: Annotated[str | None, typer.Option(help="Only this reason.")] = None,
    topic: Annotated[str | None, typer.Option(help="Only this topic.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List stored dead letters (positions, reasons, details; never payloads)."""
    import asyncpg

    from ingest.dlq import list_dead_letters

    settings = _settings()

    async def go() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(settings.database.dsn)
        try:
            return await list_dead_letters(conn, reason=reason, topic=topic, limit=limit)
        finally:
            await conn.close()

    rows = asyncio.run(go())
    if as_json:
        typer.echo(json.dumps(rows, default=str, indent=2))
        return
    for r in rows:
        where = f"{r['topic']}[{r['partition']}]@{r['offset']}"
        if r["element_index"] is not None:
            where += f"#{r['element_index']}"
        typer.echo(f"{r['dead_letter_id']:>8} {where:<40} {r['reason']:<22} {r['detail'][:100]}")
    typer.echo(f"{len(rows)} dead letter(s)")


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead letter ids (default: all).")] = None,
    reason: Annotated[str | None, typer.Option(help="Only this reason.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 1000,
) -> None:
    """Re-decode stored dead letters; store and remove those that are now valid."""
    from ingest.app import create_pool
    from ingest.dlq import replay

    settings = _settings()

    async def go() -> list[Any]:
        pool = await create_pool(settings)
        try:
            return await replay(settings, pool, ids=ids or None, reason=reason, limit=limit)
        finally:
            await pool.close()

    outcomes = asyncio.run(go())
    done = sum(1 for o in outcomes if o.replayed)
    for o in outcomes:
        typer.echo(f"{o.dead_letter_id:>8} {'replayed' if o.replayed else 'kept':<9} {o.detail}")
    typer.echo(f"{done} replayed, {len(outcomes) - done} kept")


@schema_app.command("export")
def schema_export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Print (or write) the JSON Schema of wire format version 1."""
    from ingest.events.jsonschema import export_json_schema

    text = json.dumps(export_json_schema(), indent=2, sort_keys=True) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        typer.echo(f"wrote {output}")


@app.command()
def simulate(
    nodes: Annotated[int, typer.Option(help="Mesh nodes.")] = 50,
    rate: Annotated[float, typer.Option(help="Target events per second (0 = flat out).")] = 1000,
    duration_s: Annotated[float | None, typer.Option(help="Stop after this long.")] = None,
    count: Annotated[int | None, typer.Option(help="Stop after this many events.")] = None,
    batch: Annotated[int, typer.Option(help="Events per JSON array (1 = single objects).")] = 1,
    malformed: Annotated[float, typer.Option(help="Fraction of deliberately bad records.")] = 0,
    skew_s: Annotated[float, typer.Option(help="Clock skew added to event times.")] = 0,
    seed: Annotated[int, typer.Option(help="Random seed for reproducible runs.")] = 1,
    topologies: Annotated[int, typer.Option(help="Mesh topologies the nodes form.")] = 1,
) -> None:
    """Publish realistic synthetic mesh telemetry to Kafka."""
    from ingest.simulate import SimulationOptions, run_simulation

    settings = _settings()
    opts = SimulationOptions(
        nodes=nodes,
        rate=rate,
        duration_s=duration_s,
        count=count,
        batch=batch,
        malformed=malformed,
        skew_s=skew_s,
        seed=seed,
        topologies=topologies,
    )
    report = asyncio.run(run_simulation(settings, opts))
    typer.echo(json.dumps(report, default=str, indent=2))


@app.command()
def demo(
    nodes: Annotated[int, typer.Option(help="Simulated mesh nodes.")] = 40,
    rate: Annotated[float, typer.Option(help="Simulated events per second.")] = 2000,
    duration_s: Annotated[float | None, typer.Option(help="Stop by itself after this.")] = None,
    database_url: Annotated[
        str | None, typer.Option(help="Use this PostgreSQL instead of starting one.")
    ] = None,
    kafka_bootstrap: Annotated[
        str | None, typer.Option(help="Use this Kafka instead of starting one.")
    ] = None,
    topic_prefix: Annotated[str, typer.Option(help="Topic prefix.")] = "mesh.",
    http_port: Annotated[int, typer.Option(help="Port of /metrics (0 = any free).")] = 9464,
) -> None:
    """Everything locally with no set-up: Postgres, Kafka, worker, simulator, live figures."""
    from ingest.demo import DemoOptions, run_demo
    from ingest.observability import configure_logging

    configure_logging("console", "warning")
    opts = DemoOptions(
        nodes=nodes,
        rate=rate,
        duration_s=duration_s,
        database_url=database_url,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        http_port=http_port,
    )
    raise typer.Exit(run_demo(opts))


@app.command()
def bench(
    events: Annotated[int, typer.Option(help="Backlog size.")] = 200_000,
) -> None:
    """Run the benchmark harness (see bench/README.md)."""
    from ingest.benchmark import run_bench

    raise typer.Exit(run_bench(events))


if __name__ == "__main__":
    app()
