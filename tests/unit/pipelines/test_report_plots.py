"""The report's plot helpers keep skewed signals readable, and the run history keeps the last run that did work."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from pipelines.ops.report_plots import draw_shard_sizes, histogram_panel, legend_patches
from pipelines.stages.report import StageReport, last_runs, read_history


@pytest.fixture
def ax():  # type: ignore[no-untyped-def]
    return Figure().subplots()


def test_a_spike_at_zero_becomes_share_non_zero_and_the_non_zero_distribution(ax) -> None:
    kept = np.concatenate([np.zeros(90), np.linspace(0.1, 0.5, 10)])
    note = histogram_panel(ax, [("kept", kept, "#2b7bba"), ("dropped", np.array([0.0, 0.3, np.nan]), "#e07b39")],
                           xlabel="share of lines repeated", title="dup_line_frac")
    assert note.n == 102 and note.zeros_split and note.zero_share == pytest.approx(91 / 102)
    assert ax.get_title() == "dup_line_frac: 11% non-zero"
    assert ax.get_xlabel() == "share of lines repeated" and ax.get_ylabel() == "documents"
    assert ax.get_xlim()[0] > 0.05  # the zeros are not drawn (the bins start at the smallest non-zero value)
    assert sum(p.get_height() for p in ax.patches) == 11


def test_far_outliers_are_clipped_into_the_edge_bin_and_counted(ax) -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(4.5, 0.4, 2000), [100.0]])
    note = histogram_panel(ax, [("kept", values, "#2b7bba")], xlabel="characters per word",
                           title="mean_word_length")
    assert note.clipped_high == 1 and note.clipped_low == 0 and not note.log_x
    assert ax.get_xlim()[1] < 10
    assert sum(p.get_height() for p in ax.patches) == values.size  # nothing is lost by clipping
    assert any("1 above" in t.get_text() for t in ax.texts)


def test_heavy_tails_get_log_axes_and_flat_data_linear_ones(ax) -> None:
    rng = np.random.default_rng(1)
    note = histogram_panel(ax, [("kept", rng.lognormal(5, 2.0, 5000), "#2b7bba")], xlabel="characters",
                           title="n_chars", clip_quantile=0.0)
    assert note.log_x and ax.get_xscale() == "log"
    flat = histogram_panel(Figure().subplots(), [("kept", rng.uniform(0, 1, 500), "#2b7bba")],
                           xlabel="score", title="quality_score")
    assert not flat.log_x and not flat.log_y and not flat.zeros_split


def test_a_tiny_non_zero_share_is_not_rounded_to_zero(ax) -> None:
    histogram_panel(ax, [("kept", np.concatenate([np.zeros(999), [3.0]]), "#2b7bba")], xlabel="x", title="pii_ips")
    assert ax.get_title() == "pii_ips: <1% non-zero"


def test_all_zero_and_empty_signals_say_so(ax) -> None:
    assert histogram_panel(ax, [("kept", np.zeros(5), "#2b7bba")], xlabel="x", title="t").zeros_split
    assert [t.get_text() for t in ax.texts] == ["all 0"]
    empty = Figure().subplots()
    histogram_panel(empty, [("kept", np.array([np.nan]), "#2b7bba")], xlabel="x", title="t")
    assert [t.get_text() for t in empty.texts] == ["no values"]


def test_every_legend_entry_has_its_colour_swatch(ax) -> None:
    legend_patches(ax, [("this version", "#2b7bba"), ("v1", "#9aa5b1")])
    handles = ax.get_legend().legend_handles
    assert [h.get_label() for h in handles] == ["this version", "v1"]
    assert [to_hex(h.get_facecolor()) for h in handles] == ["#2b7bba", "#9aa5b1"]


def test_one_shard_is_one_bar_on_an_integer_axis(ax) -> None:
    draw_shard_sizes(ax, [900_000], 1 << 20)
    assert list(ax.get_xticks()) == [1] and ax.get_xlim() == pytest.approx((0.3, 5.7))
    assert ax.get_xlabel() == "shard number" and len(ax.patches) == 1


def test_run_history_keeps_the_last_run_that_did_work(tmp_path) -> None:
    history = tmp_path / "runs" / "ingest.jsonl"
    first = StageReport(stage="ingest", counts={"records_read": 6270}, snapshots={"raw_docs": 11}).record_run(history)
    idle = StageReport(stage="ingest", counts={"records_read": 0}, snapshots={"raw_docs": 11}).record_run(history)
    assert first["did_work"] and not idle["did_work"]
    with history.open("a") as f:
        f.write('{"stage": "ingest", "trunc')  # a run killed while writing
    (tmp_path / "runs" / "shard.jsonl").write_text(json.dumps(
        {"stage": "shard", "finished_at": "t", "counts": {}, "snapshots": {}, "did_work": False}) + "\n")
    assert len(read_history(history)) == 2
    runs = {r["stage"]: r for r in last_runs(tmp_path / "runs")}
    assert runs["ingest"]["worked"]["counts"] == {"records_read": 6270}
    assert runs["ingest"]["last"]["counts"] == {"records_read": 0}
    assert runs["shard"]["worked"] is None
    skipped = StageReport(stage="ingest", snapshots={"raw_docs": 12}, skipped=True).record_run(history)
    assert not skipped["did_work"]


def test_the_first_recorded_run_compares_with_the_pointer_of_the_run_before(tmp_path) -> None:
    history = tmp_path / "runs" / "ingest.jsonl"
    idle = StageReport(stage="ingest", snapshots={"raw_docs": 11}).record_run(history, {"raw_docs": 11})
    assert not idle["did_work"]
    worked = StageReport(stage="curate", snapshots={"clean_docs": 5}).record_run(tmp_path / "c.jsonl", {"clean_docs": 4})
    assert worked["did_work"]
