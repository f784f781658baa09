"""``ingest bench``: runs the harness in ``bench/`` of a source checkout.

The harness is a development tool and is not installed with the package (it needs psql, a
broker, and the ``bench`` extra), so this module finds it next to the package.
"""

from __future__ import annotations

import sys
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def run_bench(events: int) -> int:
    """Run every contender on a backlog of ``events`` records; return the exit code."""
    if not (_CHECKOUT / "bench" / "harness.py").exists():
        print("ingest bench needs a source checkout (bench/ is not installed)", file=sys.stderr)
        return 2
    if str(_CHECKOUT) not in sys.path:
        sys.path.insert(0, str(_CHECKOUT))
    from bench.__main__ import main

    return main(["--events", str(events)])
