"""A started service settles its heap: start-up objects leave the cyclic GC's scans, full collections get rarer."""
from __future__ import annotations

import gc

from trader.service import GC_THRESHOLDS, settle_heap


def test_settle_heap_freezes_what_exists_and_sets_the_thresholds() -> None:
    before = gc.get_threshold()
    keep = [[i] for i in range(1000)]  # start-up objects
    try:
        settle_heap()
        assert gc.get_threshold() == GC_THRESHOLDS and GC_THRESHOLDS[2] > 10  # full collections rarer
        assert gc.get_freeze_count() >= len(keep)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
