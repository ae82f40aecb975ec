"""`tokenmill version diff A B`: which kept documents one version added or removed against another, and why.

A document is *added* when B keeps it and A did not (it was new, or A filtered or deduplicated it) and
*removed* when A kept it and B does not (B filtered or deduplicated it, or it is gone from the input).
Both sides are grouped by source and reason, with document and token counts (tokens from each side's tokens
table). All of it is Arrow joins on doc_id, read at each version's snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.config import Config
from pipelines.ops.versions import VersionInfo, read_version_table

DECISION_COLUMNS = ("doc_id", "decision", "reason", "source_type", "source_uri")


@dataclass
class VersionDiff:
    """The change from version `a` to `b`. `changes` rows: change (added|removed), source, reason, docs, tokens;
    `tables` maps table -> (rows in a, rows in b); `shards` maps manifest total -> (a, b)."""

    a: str
    b: str
    changes: list[dict[str, Any]] = field(default_factory=list)
    tables: dict[str, tuple[int, int]] = field(default_factory=dict)
    shards: dict[str, tuple[int, int]] = field(default_factory=dict)
    params_changed: bool = False

    def total(self, change: str, what: str = "docs") -> int:
        return sum(int(r[what]) for r in self.changes if r["change"] == change)


def _label(decision: pa.ChunkedArray, reason: pa.ChunkedArray, prefix: str, missing: str) -> pa.Array:
    """`<prefix> decision:reason` per row, `missing` where the document has no decision on that side."""
    text = pc.binary_join_element_wise(_str(decision), pc.fill_null(_str(reason), "-"), ":")
    text = pc.replace_substring_regex(text, ":-$", "")
    labelled = pc.binary_join_element_wise(pa.scalar(prefix), text, " ")
    return pc.fill_null(labelled, missing)


def _str(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    # pyiceberg reads strings as large_string; Arrow's string kernels want one width throughout
    return pc.cast(values, pa.string())


def _source(t: pa.Table) -> pa.Array:
    return pc.binary_join_element_wise(pc.fill_null(_str(t.column("source_type")), "?"),
                                       pc.fill_null(_str(t.column("source_uri")), "?"), ":")


def _side(kept_here: pa.Table, kept_there: pa.Table, decisions_there: pa.Table, tokens_here: pa.Table,
          change: str, prefix: str, missing: str) -> list[dict[str, Any]]:
    """Documents kept here but not there, labelled with their decision there, grouped by source and reason."""
    only = kept_here.join(kept_there.select(["doc_id"]), keys="doc_id", join_type="left anti")
    if only.num_rows == 0:
        return []
    there = decisions_there.select(["doc_id", "decision", "reason"]).rename_columns(
        ["doc_id", "decision_there", "reason_there"])
    only = only.join(there, keys="doc_id", join_type="left outer")
    only = only.join(tokens_here.select(["doc_id", "n_tokens"]), keys="doc_id", join_type="left outer")
    grouped = pa.table({
        "source": _source(only),
        "reason": _label(only.column("decision_there"), only.column("reason_there"), prefix, missing),
        "n_tokens": pc.fill_null(pc.cast(only.column("n_tokens"), pa.int64()), 0),
        "doc_id": only.column("doc_id"),
    }).group_by(["source", "reason"]).aggregate([("doc_id", "count"), ("n_tokens", "sum")])
    rows = [{"change": change, "source": r["source"], "reason": r["reason"], "docs": r["doc_id_count"],
             "tokens": r["n_tokens_sum"]} for r in grouped.to_pylist()]
    return sorted(rows, key=lambda r: (-r["docs"], r["source"], r["reason"]))


def diff_versions(cfg: Config, a: VersionInfo, b: VersionInfo) -> VersionDiff:
    """Compare two versions (either may be the `current` state); see the module docstring for the rules."""
    dec_a = read_version_table(cfg, a, "doc_decisions", DECISION_COLUMNS)
    dec_b = read_version_table(cfg, b, "doc_decisions", DECISION_COLUMNS)
    kept_a = dec_a.filter(pc.equal(dec_a.column("decision"), "kept"))
    kept_b = dec_b.filter(pc.equal(dec_b.column("decision"), "kept"))
    tok_a = read_version_table(cfg, a, "tokens", ("doc_id", "n_tokens"))
    tok_b = read_version_table(cfg, b, "tokens", ("doc_id", "n_tokens"))
    out = VersionDiff(a=a.name, b=b.name, params_changed=a.params_hash != b.params_hash)
    out.changes = [*_side(kept_b, kept_a, dec_a, tok_b, "added", f"was {a.name}", "new document"),
                   *_side(kept_a, kept_b, dec_b, tok_a, "removed", f"now {b.name}", "no longer in input")]
    out.tables = {t: (a.table_rows.get(t, 0), b.table_rows.get(t, 0)) for t in sorted(set(a.table_rows) |
                                                                                      set(b.table_rows))}
    out.shards = {k: (a.shards.get(k, 0), b.shards.get(k, 0)) for k in ("n_shards", "n_samples", "n_tokens",
                                                                         "total_bytes")}
    return out
