"""The worker's garbage-collector tuning is undone when the worker returns."""

from __future__ import annotations

import gc

from ingest.app import tune_gc


def test_tune_gc_turns_automatic_collection_off_and_restore_puts_it_back() -> None:
    before = (gc.isenabled(), gc.get_threshold())
    restore = tune_gc()
    try:
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0  # start-up's objects are out of every scan
        assert gc.collect() >= 0  # explicit collections still run
    finally:
        restore()
    assert (gc.isenabled(), gc.get_threshold()) == before
    assert gc.get_freeze_count() == 0
