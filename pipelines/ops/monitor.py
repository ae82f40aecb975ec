"""Data-quality monitoring between dataset versions, and stage metrics as a Prometheus text file.

Checks compare a new state (a version, or `current`) with a base version (by default the one before it):
volume drop (kept documents, tokens), schema change (columns added, removed or retyped in any table), drift of
each numeric quality signal of kept documents (two-sample Kolmogorov-Smirnov distance) and shift of the language
mix (total-variation distance). Thresholds live in `MonitorConfig`; a failed check is a warning, or under
`--strict` a MonitorError.

The distance kernels are pure functions on numpy arrays.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines import lake
from pipelines.config import Config
from pipelines.errors import MonitorError
from pipelines.ops.monitor_config import MonitorConfig
from pipelines.ops.versions import VersionInfo, previous_version, read_version_table, resolve_version
from pipelines.stages.report import StageReport
from schemas import TABLES
from schemas.signals import SIGNAL_FIELDS

log = logging.getLogger(__name__)


def monitor_config(cfg: Config) -> MonitorConfig:
    """`cfg.monitor`."""
    return cfg.monitor


# ---- kernels ---------------------------------------------------------------------------------------------

def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs of `a` and `b`.

    In [0, 1]; 0 for identical distributions, 1 for disjoint ranges. NaNs are ignored. Raises ValueError
    when either sample has no finite value.

    >>> ks_distance(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))
    0.0
    >>> ks_distance(np.array([1.0, 2.0]), np.array([5.0, 6.0]))
    1.0
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    x, y = np.sort(x[~np.isnan(x)]), np.sort(y[~np.isnan(y)])
    if x.size == 0 or y.size == 0:
        raise ValueError(f"ks_distance needs values on both sides, got {x.size} and {y.size}")
    # the CDF gap peaks at a sample value; querying each sorted sample on its own keeps the binary
    # searches cache-friendly (sorted keys) instead of searching one unsorted concatenated grid
    gap = 0.0
    for grid in (x, y):
        cdf_x = np.searchsorted(x, grid, side="right") / x.size
        cdf_y = np.searchsorted(y, grid, side="right") / y.size
        gap = max(gap, float(np.max(np.abs(cdf_x - cdf_y))))
    return gap


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Total-variation distance between two count (or probability) vectors over the same categories.

    Half the L1 distance of the normalized vectors: in [0, 1]. Raises ValueError for shapes that differ,
    negative entries or an all-zero vector.

    >>> total_variation(np.array([50, 50]), np.array([100, 0]))
    0.5
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"total_variation needs equal shapes, got {p.shape} and {q.shape}")
    if (p < 0).any() or (q < 0).any():
        raise ValueError("total_variation needs non-negative counts")
    if p.sum() == 0 or q.sum() == 0:
        raise ValueError(f"total_variation needs non-zero totals, got {p.sum()} and {q.sum()}")
    return float(0.5 * np.abs(p / p.sum() - q / q.sum()).sum())


def relative_drop(before: int | float, after: int | float) -> float:
    """(before - after) / before, floored at 0 (growth is no drop); 0 when before is 0.

    Raises ValueError for a negative count.

    >>> relative_drop(100, 75)
    0.25
    """
    if before < 0 or after < 0:
        raise ValueError(f"relative_drop needs counts >= 0, got {before} and {after}")
    return 0.0 if before == 0 else max(0.0, (before - after) / before)


# ---- checks ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """One check between two versions: `value` against `threshold`; `ok` False means a warning."""

    name: str
    kind: str
    value: float | None
    threshold: float | None
    ok: bool
    detail: str


def _schema_of(cfg: Config, info: VersionInfo, table: str) -> dict[str, str] | None:
    snapshot_id = info.snapshot_id(table)
    if snapshot_id is None:
        return None
    tbl = lake.load_table(lake.open_catalog(cfg.lake), cfg.lake.namespace, table)
    snap = tbl.snapshot_by_id(snapshot_id) if tbl is not None else None
    if tbl is None or snap is None:
        return None
    schema = tbl.schemas().get(snap.schema_id) if snap.schema_id is not None else tbl.schema()
    return {f.name: str(f.field_type) for f in (schema or tbl.schema()).fields}


def schema_checks(cfg: Config, base: VersionInfo, new: VersionInfo, mcfg: MonitorConfig) -> list[Check]:
    out = []
    for table in TABLES:
        a, b = _schema_of(cfg, base, table), _schema_of(cfg, new, table)
        if a is None or b is None:
            continue
        added = sorted(set(b) - set(a))
        removed = sorted(set(a) - set(b))
        retyped = sorted(k for k in set(a) & set(b) if a[k] != b[k])
        changed = bool(added or removed or retyped)
        parts = [f"{label} {', '.join(cols)}" for label, cols in
                 (("added", added), ("removed", removed), ("retyped", retyped)) if cols]
        out.append(Check(f"schema {table}", "schema", float(changed), None, not changed or mcfg.allow_schema_change,
                         "; ".join(parts) if parts else "unchanged"))
    return out


def _numeric_signals(mcfg: MonitorConfig) -> list[str]:
    numeric = [f.name for f in SIGNAL_FIELDS if f.field_type.is_primitive and str(f.field_type) in
               ("int", "long", "float", "double")]
    return [s for s in numeric if mcfg.signals is None or s in mcfg.signals]


def _column(t: pa.Table, name: str) -> np.ndarray | None:
    if name not in t.column_names:
        return None
    return np.asarray(pc.cast(t.column(name), pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def language_counts(t: pa.Table) -> dict[str, int]:
    """Documents per language code (null as 'unknown') in a table with a `language` column; {} without one."""
    if "language" not in t.column_names:
        return {}
    col = pc.fill_null(t.column("language"), "unknown")
    return {r["values"]: int(r["counts"]) for r in pc.value_counts(col).to_pylist()}


def drift_checks(cfg: Config, base: VersionInfo, new: VersionInfo, mcfg: MonitorConfig,
                 tables: tuple[pa.Table, pa.Table] | None = None) -> list[Check]:
    """KS distance per numeric signal and TV distance of the language mix, over kept documents (clean_docs)."""
    signals = _numeric_signals(mcfg)
    if tables is None:
        cols = ("doc_id", "language", *signals)
        tables = (read_version_table(cfg, base, "clean_docs", cols), read_version_table(cfg, new, "clean_docs", cols))
    ta, tb = tables
    if min(ta.num_rows, tb.num_rows) < mcfg.min_docs:
        return [Check("quality signals", "drift", None, mcfg.max_signal_drift, True,
                      f"skipped: {ta.num_rows} and {tb.num_rows} kept docs, fewer than min_docs={mcfg.min_docs}")]
    out = []
    for name in signals:
        a, b = _column(ta, name), _column(tb, name)
        if a is None or b is None or np.isnan(a).all() or np.isnan(b).all():
            continue
        d = round(ks_distance(a, b), 12)  # CDF steps like 3/5 - 2/5 must not land a hair above a threshold
        out.append(Check(f"signal {name}", "drift", round(d, 4), mcfg.max_signal_drift, d <= mcfg.max_signal_drift,
                         f"KS distance {d:.3f} (median {np.nanmedian(a):.4g} -> {np.nanmedian(b):.4g})"))
    la, lb = language_counts(ta), language_counts(tb)
    if la and lb:
        langs = sorted(set(la) | set(lb))
        d = round(total_variation(np.array([la.get(k, 0) for k in langs]),
                                  np.array([lb.get(k, 0) for k in langs])), 12)
        top = sorted(langs, key=lambda k: -abs(la.get(k, 0) / ta.num_rows - lb.get(k, 0) / tb.num_rows))[:3]
        moves = ", ".join(f"{k} {la.get(k, 0) / ta.num_rows:.1%}->{lb.get(k, 0) / tb.num_rows:.1%}" for k in top)
        out.append(Check("language mix", "drift", round(d, 4), mcfg.max_language_shift,
                         d <= mcfg.max_language_shift, f"TV distance {d:.3f} ({moves})"))
    return out


def volume_checks(base: VersionInfo, new: VersionInfo, mcfg: MonitorConfig) -> list[Check]:
    out = []
    pairs = [("kept documents", base.table_rows.get("clean_docs", 0), new.table_rows.get("clean_docs", 0))]
    if base.shards and new.shards:
        pairs.append(("tokens", base.shards.get("n_tokens", 0), new.shards.get("n_tokens", 0)))
    for label, a, b in pairs:
        drop = round(relative_drop(a, b), 12)
        out.append(Check(f"volume {label}", "volume", round(drop, 4), mcfg.max_volume_drop,
                         drop <= mcfg.max_volume_drop, f"{a:,} -> {b:,} ({(b - a) / a if a else 0:+.1%})"))
    return out


def compare(cfg: Config, base: VersionInfo, new: VersionInfo, mcfg: MonitorConfig | None = None) -> list[Check]:
    """Every check of `new` against `base`, in a fixed order: volume, schema, drift."""
    mcfg = mcfg or monitor_config(cfg)
    return [*volume_checks(base, new, mcfg), *schema_checks(cfg, base, new, mcfg),
            *drift_checks(cfg, base, new, mcfg)]


def run_monitor(cfg: Config, new: str = "current", base: str | None = None, *, strict: bool = False,
                mcfg: MonitorConfig | None = None) -> tuple[VersionInfo | None, list[Check]]:
    """Compare version `new` with `base` (default: the version before `new`); log each failed check as a
    warning. Returns (base, checks); no base version means no checks. Under `strict`, failed checks raise
    MonitorError naming them."""
    new_info = resolve_version(cfg, new)
    base_info = resolve_version(cfg, base) if base else previous_version(cfg, new)
    if base_info is None:
        log.info("monitor: no earlier version to compare %s with", new)
        return None, []
    checks = compare(cfg, base_info, new_info, mcfg)
    failed = [c for c in checks if not c.ok]
    for c in failed:
        log.warning("monitor %s -> %s: %s: %s", base_info.name, new_info.name, c.name, c.detail)
    if strict and failed:
        raise MonitorError(f"{len(failed)} check(s) failed between {base_info.name} and {new_info.name}: "
                           + "; ".join(f"{c.name} ({c.detail})" for c in failed))
    return base_info, checks


# ---- Prometheus text file --------------------------------------------------------------------------------

def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(v: float) -> str:
    return "NaN" if isinstance(v, float) and math.isnan(v) else repr(float(v)) if isinstance(v, float) else str(v)


def prometheus_text(reports: Iterable[StageReport | Mapping[str, Any]], checks: Iterable[Check] = ()) -> str:
    """Stage counts, seconds and monitor checks in the Prometheus text exposition format (gauges)."""
    rows = [asdict(r) if isinstance(r, StageReport) else dict(r) for r in reports]
    lines = ["# HELP tokenmill_stage_count Documents, tokens, shards or bytes counted by the stage's last run.",
             "# TYPE tokenmill_stage_count gauge"]
    for r in rows:
        for name, value in sorted(r.get("counts", {}).items()):
            lines.append(f'tokenmill_stage_count{{stage="{_label(r["stage"])}",count="{_label(name)}"}} {_num(value)}')
    lines += ["# HELP tokenmill_stage_seconds Wall-clock seconds of the stage's last run.",
              "# TYPE tokenmill_stage_seconds gauge"]
    lines += [f'tokenmill_stage_seconds{{stage="{_label(r["stage"])}"}} {_num(float(r.get("seconds", 0.0)))}'
              for r in rows]
    checks = list(checks)
    if checks:
        lines += ["# HELP tokenmill_monitor_check_ok 1 when the check between versions passed.",
                  "# TYPE tokenmill_monitor_check_ok gauge"]
        lines += [f'tokenmill_monitor_check_ok{{check="{_label(c.name)}"}} {int(c.ok)}' for c in checks]
        lines += ["# HELP tokenmill_monitor_check_value Measured value of the check (drop, distance).",
                  "# TYPE tokenmill_monitor_check_value gauge"]
        lines += [f'tokenmill_monitor_check_value{{check="{_label(c.name)}"}} {_num(float(c.value))}'
                  for c in checks if c.value is not None]
    return "\n".join(lines) + "\n"


def stage_metrics(metrics_dir: str | Path) -> list[dict[str, Any]]:
    """The stage metrics JSON files (`<stage>.json`, as StageReport writes them) in a folder, by stage name."""
    folder = Path(metrics_dir)
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.glob("*.json")):
        data = json.loads(p.read_text())
        if isinstance(data, dict) and "stage" in data and "counts" in data:
            out.append(data)
    return out


def write_prometheus(path: str | Path, reports: Iterable[StageReport | Mapping[str, Any]],
                     checks: Iterable[Check] = ()) -> Path:
    """Write `prometheus_text` atomically (node_exporter's textfile collector must never see half a file)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(prometheus_text(reports, checks))
    tmp.replace(p)
    return p
