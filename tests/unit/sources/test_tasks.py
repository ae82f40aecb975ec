"""Task helpers: the collector thresholds a unit runs under are restored afterwards, also on failure."""

from __future__ import annotations

import gc

import pytest

from pipelines.sources.tasks import UNIT_GC_THRESHOLD, fewer_gc_passes


def test_gc_thresholds_are_raised_inside_and_restored_after_even_on_error() -> None:
    before = gc.get_threshold()
    assert before != UNIT_GC_THRESHOLD
    with fewer_gc_passes():
        assert gc.get_threshold() == UNIT_GC_THRESHOLD
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), fewer_gc_passes():
        raise RuntimeError("unit failed")
    assert gc.get_threshold() == before
