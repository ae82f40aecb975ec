"""Monitoring between versions: distance kernels, checks and thresholds, --strict, Prometheus text."""

from __future__ import annotations

import numpy as np
import pytest
from pyiceberg.types import StringType

from pipelines import lake
from pipelines.config import Config
from pipelines.errors import MonitorError
from pipelines.ops.monitor import (
    Check,
    MonitorConfig,
    ks_distance,
    prometheus_text,
    relative_drop,
    run_monitor,
    stage_metrics,
    total_variation,
    write_prometheus,
)
from pipelines.ops.versions import create_version
from pipelines.stages.report import StageReport


def test_ks_distance_matches_known_values_and_scipy() -> None:
    from scipy.stats import ks_2samp

    assert ks_distance(np.array([1.0, 2, 3, 4]), np.array([3.0, 4, 5, 6])) == 0.5
    assert ks_distance(np.array([1.0, np.nan, 2]), np.array([1.0, 2])) == 0.0
    rng = np.random.default_rng(7)
    a, b = rng.normal(0, 1, 500), rng.normal(0.3, 1.2, 700)
    assert ks_distance(a, b) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)
    with pytest.raises(ValueError, match="got 0 and 2"):
        ks_distance(np.array([np.nan]), np.array([1.0, 2.0]))


def test_total_variation_and_relative_drop() -> None:
    assert total_variation(np.array([3, 1, 1]), np.array([3, 2, 0])) == pytest.approx(0.2)
    assert total_variation(np.array([1, 0]), np.array([0, 5])) == 1.0
    with pytest.raises(ValueError, match="equal shapes"):
        total_variation(np.array([1, 2]), np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="non-zero totals"):
        total_variation(np.array([0, 0]), np.array([1, 2]))
    assert relative_drop(700, 620) == pytest.approx(80 / 700)
    assert relative_drop(10, 20) == 0.0 and relative_drop(0, 5) == 0.0
    with pytest.raises(ValueError, match="got -1 and 5"):
        relative_drop(-1, 5)


def _two_versions(cfg: Config, build, first, second) -> None:
    build(cfg, first)
    create_version(cfg, "v1")
    build(cfg, second)
    create_version(cfg, "v2")


def test_checks_measure_volume_and_drift_between_versions(lake_config: Config, lake_builder, first_docs,
                                                         second_docs) -> None:
    _two_versions(lake_config, lake_builder, first_docs, second_docs)
    mcfg = MonitorConfig(min_docs=3, max_volume_drop=0.1, max_language_shift=0.25)
    base, checks = run_monitor(lake_config, "v2", mcfg=mcfg)
    assert base.name == "v1"
    by_name = {c.name: c for c in checks}
    assert by_name["volume kept documents"].value == 0.0 and by_name["volume kept documents"].ok
    tokens = by_name["volume tokens"]
    assert tokens.value == pytest.approx(80 / 700, abs=1e-4) and not tokens.ok
    assert "700 -> 620" in tokens.detail
    lang = by_name["language mix"]
    assert lang.value == pytest.approx(0.2) and lang.ok
    assert "de 20.0%->40.0%" in lang.detail
    # n_words of kept docs: [40, 60, 80, 100, 70] -> [40, 80, 70, 90, 30]
    assert by_name["signal n_words"].value == pytest.approx(0.2)
    assert all(c.ok for c in checks if c.kind == "schema")


def test_strict_turns_failed_checks_into_an_error(lake_config: Config, lake_builder, first_docs,
                                                 second_docs) -> None:
    _two_versions(lake_config, lake_builder, first_docs, second_docs)
    mcfg = MonitorConfig(min_docs=3, max_language_shift=0.1, max_signal_drift=0.19)
    with pytest.raises(MonitorError, match=r"2 check\(s\) failed between v1 and v2: signal n_words \(KS distance 0.200.*; language mix"):
        run_monitor(lake_config, "v2", strict=True, mcfg=mcfg.model_copy(update={"signals": ["n_words"]}))
    _, checks = run_monitor(lake_config, "v2", base="v2", strict=True, mcfg=mcfg)  # a version equals itself
    assert checks and all(c.ok for c in checks)


def test_too_few_docs_skip_drift_and_no_base_means_no_checks(lake_config: Config, lake_builder, first_docs,
                                                             second_docs) -> None:
    lake_builder(lake_config, first_docs)
    assert run_monitor(lake_config, "current") == (None, [])
    create_version(lake_config, "v1")
    _, checks = run_monitor(lake_config, "current", mcfg=MonitorConfig())
    drift = [c for c in checks if c.kind == "drift"]
    assert len(drift) == 1 and drift[0].ok and drift[0].detail.startswith("skipped: 5 and 5 kept docs")


def test_schema_change_is_flagged_unless_allowed(lake_config: Config, lake_builder, first_docs) -> None:
    lake_builder(lake_config, first_docs)
    create_version(lake_config, "v1")
    table = lake.load_table(lake.open_catalog(lake_config.lake), lake_config.lake.namespace, "clean_docs")
    with table.update_schema() as update:
        update.add_column("script", StringType())
    lake_builder(lake_config, first_docs)
    _, checks = run_monitor(lake_config, "current", mcfg=MonitorConfig(min_docs=3))
    schema = {c.name: c for c in checks if c.kind == "schema"}
    assert not schema["schema clean_docs"].ok and schema["schema clean_docs"].detail == "added script"
    assert schema["schema raw_docs"].ok
    _, checks = run_monitor(lake_config, "current", mcfg=MonitorConfig(min_docs=3, allow_schema_change=True))
    assert all(c.ok for c in checks if c.kind == "schema")


def test_prometheus_text_has_stage_counts_seconds_and_checks(tmp_path) -> None:
    reports = [StageReport("curate", counts={"kept": 5, "dropped_length": 1}, seconds=1.5),
               StageReport("shard", counts={"shards": 2}, seconds=0.25)]
    checks = [Check('volume "kept"', "volume", 0.1, 0.2, True, "")]
    text = prometheus_text(reports, checks)
    lines = text.splitlines()
    assert 'tokenmill_stage_count{stage="curate",count="dropped_length"} 1' in lines
    assert 'tokenmill_stage_seconds{stage="shard"} 0.25' in lines
    assert 'tokenmill_monitor_check_ok{check="volume \\"kept\\""} 1' in lines
    assert "# TYPE tokenmill_stage_count gauge" in lines
    metrics = tmp_path / "metrics"
    reports[0].write_metrics(metrics / "curate.json")
    reports[1].write_metrics(metrics / "shard.json")
    out = write_prometheus(tmp_path / "prom" / "tokenmill.prom", stage_metrics(metrics))
    assert out.read_text() == prometheus_text(reports)
