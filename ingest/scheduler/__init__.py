"""The scheduler and its jobs (SPEC section 5; docs/scheduler.md).

``runner`` holds the loop, leadership and run records; one module per job: ``partitions``,
``retention``, ``snapshots``, ``routes`` (with ``announce``), ``nodes`` (stale nodes), ``dns``.
This package imports nothing on its own so that the job modules can import their siblings.
"""
