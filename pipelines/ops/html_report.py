"""`tokenmill report --output FILE.html`: one self-contained HTML page about a dataset version.

Headline numbers, then figures (PNG embedded as data URIs, so the file can be mailed or attached to a CI run):
outcomes and drop reasons, quality-signal distributions of kept vs dropped documents, duplicate cluster
sizes, language mix, document length in tokens, shard sizes, and the change against the previous version
(documents added and removed by reason, and the monitoring checks). Counts are exact; histograms use an
evenly spaced sample of at most `sample_rows` documents.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.config import Config
from pipelines.ops import report_plots as plots
from pipelines.ops.monitor import Check, compare, language_counts, monitor_config, stage_metrics
from pipelines.ops.versions import (
    VersionInfo,
    previous_version,
    read_manifest,
    read_version_table,
    resolve_version,
)
from pipelines.ops.versions_diff import VersionDiff, diff_versions
from pipelines.stages.report import last_runs
from schemas.signals import SIGNAL_FIELDS

log = logging.getLogger(__name__)

NUMERIC = ("int", "long", "float", "double")

# x-axis label of each quality signal: what one document's value counts (schemas/signals.py defines them)
_GRAM = "chars in the most frequent {n}-gram x its count / chars"
_DUP = "chars in {n}-grams seen before / chars"
SIGNAL_AXES: dict[str, str] = {
    "n_chars": "characters", "n_words": "words", "n_lines": "lines",
    "mean_word_length": "characters per word", "language_score": "fastText probability of the language",
    "quality_score": "heuristic score (0-1)", "alpha_words_ratio": "share of words with a letter",
    "hash_word_ratio": "'#' per word", "ellipsis_word_ratio": "ellipses per word",
    "bullet_lines_ratio": "share of lines starting with a bullet",
    "ellipsis_lines_ratio": "share of lines ending in an ellipsis", "n_stop_words": "distinct stop words",
    "dup_para_frac": "share of paragraphs repeated", "dup_para_char_frac": "chars in repeated paragraphs / chars",
    "dup_line_frac": "share of lines repeated", "dup_line_char_frac": "chars in repeated lines / chars",
    **{f"top_{n}_gram_char_frac": _GRAM.format(n=n) for n in (2, 3, 4)},
    **{f"dup_{n}_gram_char_frac": _DUP.format(n=n) for n in range(5, 11)},
    "line_punct_ratio": "share of lines ending a sentence", "short_line_ratio": "share of short lines",
    "char_dup_ratio": "repeated-line chars / chars", "newline_word_ratio": "newlines per word",
    "c4_sentences": "sentences in the lines C4 kept", "pii_emails": "emails redacted",
    "pii_ips": "IP addresses redacted", "pii_phones": "phone numbers redacted",
}
SIGNALS_CAPTION = (
    "Each numeric quality signal over kept (blue) and dropped (orange) documents; the y axis counts documents. "
    "Where most documents are exactly 0, the title gives the share non-zero and the bars show the non-zero "
    "values only (the x axis starts above 0). Values far outside the 1st-99th percentile are counted into the edge bins (the corner says "
    "how many); heavy tails get a log x axis and very uneven counts a log y axis. The top n-gram signals "
    "count every occurrence of the most frequent n-gram, overlapping ones included, as Gopher and datatrove "
    "do, so a phrase repeated back to back scores above 1.")


def cluster_sizes(cluster_ids: pa.Array, doc_ids: pa.Array, kept_doc_ids: pa.Array) -> np.ndarray:
    """Members per duplicate cluster: the distinct documents that carry the cluster id, plus its kept document.

    Inputs are equal-length arrays of doc_decisions columns; rows with a null cluster id are ignored.
    Returns int64 sizes (>= 2 for a real cluster), sorted ascending. ValueError when lengths differ.

    >>> cluster_sizes(pa.array(["a", "a", None]), pa.array(["b", "c", "a"]), pa.array(["a", "a", None])).tolist()
    [3]
    """
    if not len(cluster_ids) == len(doc_ids) == len(kept_doc_ids):
        raise ValueError(f"cluster_sizes needs equal lengths, got {len(cluster_ids)}, {len(doc_ids)}, "
                         f"{len(kept_doc_ids)}")
    members = pa.table({"cluster": pa.concat_arrays([pc.cast(cluster_ids, pa.string())] * 2),
                        "doc": pa.concat_arrays([pc.cast(doc_ids, pa.string()), pc.cast(kept_doc_ids, pa.string())])})
    members = members.filter(pc.and_(pc.is_valid(members.column("cluster")), pc.is_valid(members.column("doc"))))
    if members.num_rows == 0:
        return np.zeros(0, dtype=np.int64)
    counts = members.group_by("cluster").aggregate([("doc", "count_distinct")]).column("doc_count_distinct")
    return np.sort(counts.to_numpy().astype(np.int64))


def _sample(t: pa.Table, max_rows: int) -> pa.Table:
    if t.num_rows <= max_rows:
        return t
    return t.take(np.linspace(0, t.num_rows - 1, max_rows).astype(np.int64))


def _floats(t: pa.Table, name: str) -> np.ndarray:
    return np.asarray(pc.cast(t.column(name), pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def outcome_counts(decisions: pa.Table) -> dict[str, int]:
    """Documents per `kept` / `filtered:<reason>` / `duplicate:<reason>` from doc_decisions columns."""
    if decisions.num_rows == 0:
        return {}
    grouped = decisions.select(["decision", "reason"]).group_by(["decision", "reason"]).aggregate(
        [("decision", "count")])
    out: dict[str, int] = {}
    for r in grouped.to_pylist():
        label = r["decision"] if r["decision"] == "kept" or r["reason"] is None else f"{r['decision']}:{r['reason']}"
        out[label] = out.get(label, 0) + int(r["decision_count"])
    return out


@dataclass
class ReportData:
    """Everything the page shows, gathered from one version (and the previous one, when there is one)."""

    version: VersionInfo
    previous: VersionInfo | None
    outcomes: dict[str, int]
    quarantine: dict[str, int]
    signals: dict[str, tuple[np.ndarray, np.ndarray]]
    cluster_sizes: np.ndarray
    languages: dict[str, int]
    previous_languages: dict[str, int] | None
    n_tokens: np.ndarray
    previous_n_tokens: np.ndarray | None
    shard_sizes: list[int]
    target_bytes: int | None
    diff: VersionDiff | None = None
    checks: list[Check] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    removal_similarity: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _near_similarities(dec: pa.Table) -> np.ndarray:
    """Similarity of each near-duplicate removal to its kept document (none for decisions written before the
    similarity column existed)."""
    if "similarity" not in dec.column_names or dec.num_rows == 0:
        return np.zeros(0)
    near = dec.filter(pc.and_(pc.equal(dec.column("reason"), "near"), pc.is_valid(dec.column("similarity"))))
    return near.column("similarity").to_numpy().astype(np.float64)


def collect_report(cfg: Config, version: str = "current", against: str | None = None,
                   sample_rows: int = 1_000_000) -> ReportData:
    """Read what the report needs at `version`, and compare with `against` (default: the previous version)."""
    info = resolve_version(cfg, version)
    prev = resolve_version(cfg, against) if against else previous_version(cfg, version)
    numeric = [f.name for f in SIGNAL_FIELDS if str(f.field_type) in NUMERIC]
    cols = ("doc_id", "decision", "reason", "cluster_id", "kept_doc_id", "similarity", "language", *numeric)
    dec = read_version_table(cfg, info, "doc_decisions", cols)
    sample = _sample(dec, sample_rows)
    kept_mask = pc.equal(sample.column("decision"), "kept").to_numpy(zero_copy_only=False)
    signals = {}
    for name in numeric:
        if name in sample.column_names:
            values = _floats(sample, name)
            signals[name] = (values[kept_mask], values[~kept_mask])
    kept = dec.filter(pc.equal(dec.column("decision"), "kept")) if dec.num_rows else dec
    quarantine = read_version_table(cfg, info, "quarantine", ("error_code",))
    q_counts = ({r["values"]: int(r["counts"]) for r in pc.value_counts(quarantine.column("error_code")).to_pylist()}
                if quarantine.num_rows else {})
    tokens = _sample(read_version_table(cfg, info, "tokens", ("n_tokens",)), sample_rows)
    manifest = read_manifest(cfg, info) or {}
    data = ReportData(
        version=info, previous=prev, outcomes=outcome_counts(dec), quarantine=q_counts, signals=signals,
        cluster_sizes=cluster_sizes(dec.column("cluster_id").combine_chunks(), dec.column("doc_id").combine_chunks(),
                                    dec.column("kept_doc_id").combine_chunks()) if dec.num_rows else np.zeros(0),
        languages=language_counts(kept), previous_languages=None, removal_similarity=_near_similarities(dec),
        n_tokens=tokens.column("n_tokens").to_numpy(zero_copy_only=False) if tokens.num_rows else np.zeros(0),
        previous_n_tokens=None, shard_sizes=[int(s["bytes"]) for s in manifest.get("shards", [])],
        target_bytes=manifest.get("target_bytes", cfg.shard.target_bytes),
    )
    if prev is not None:
        pdec = read_version_table(cfg, prev, "doc_decisions", ("decision", "language"))
        data.previous_languages = language_counts(pdec.filter(pc.equal(pdec.column("decision"), "kept"))
                                                  if pdec.num_rows else pdec)
        ptok = _sample(read_version_table(cfg, prev, "tokens", ("n_tokens",)), sample_rows)
        data.previous_n_tokens = ptok.column("n_tokens").to_numpy(zero_copy_only=False)
        data.diff = diff_versions(cfg, prev, info)
        data.checks = compare(cfg, prev, info, monitor_config(cfg))
    if info.name == "current":
        data.stages = stage_metrics(cfg.lake.metrics_dir or Path(cfg.lake.root) / "metrics")
        data.runs = last_runs(Path(cfg.lake.root) / "runs")
    return data


# ---- rendering -------------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1f2933}
main{max-width:1080px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:26px;margin:8px 0 4px} h2{font-size:19px;margin:34px 0 6px;border-bottom:1px solid #d9dee4;
padding-bottom:4px} .meta{color:#52606d;font-size:13px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:12px;margin:18px 0}
.card{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.card b{display:block;font-size:22px;color:#2b7bba} .card span{font-size:12px;color:#52606d}
figure{background:#fff;margin:10px 0;padding:12px;border-radius:8px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
figure img{max-width:100%} figcaption{font-size:13px;color:#52606d;margin-top:6px}
table{border-collapse:collapse;background:#fff;font-size:13px;margin:8px 0;width:100%}
th,td{text-align:left;padding:5px 9px;border-bottom:1px solid #e4e7eb} th{background:#eef1f4}
td.num{text-align:right;font-variant-numeric:tabular-nums} .ok{color:#1e7e34;font-weight:600}
.warn{color:#c0392b;font-weight:600} code{font-size:12px}
"""


def _e(v: object) -> str:
    return html.escape(str(v))


def _n(v: int | float) -> str:
    return f"{v:,}" if isinstance(v, int) else f"{v:,.4g}"


def _table(headers: list[str], rows: list[list[object]], numeric: frozenset[int] | set[int] = frozenset()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td class='num'>{_e(c)}</td>" if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(png: str, alt: str, caption: str) -> str:
    return (f"<figure><img alt='{_e(alt)}' src='data:image/png;base64,{png}'>"
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _cards(d: ReportData) -> str:
    v = d.version
    raw = v.table_rows.get("raw_docs", 0)
    kept = d.outcomes.get("kept", 0)
    dup = sum(c for k, c in d.outcomes.items() if k.startswith("duplicate"))
    filt = sum(c for k, c in d.outcomes.items() if k.startswith("filtered"))
    items = [("raw documents", _n(raw)), ("kept", f"{_n(kept)} ({kept / raw:.1%})" if raw else _n(kept)),
             ("filtered", _n(filt)), ("duplicates", _n(dup)), ("quarantined", _n(sum(d.quarantine.values()))),
             ("tokens", _n(v.shards.get("n_tokens", int(d.n_tokens.sum()) if d.n_tokens.size else 0))),
             ("shards", _n(v.shards.get("n_shards", 0))),
             ("shard bytes", f"{v.shards.get('total_bytes', 0) / 2**20:,.1f} MiB")]
    return "<div class='cards'>" + "".join(f"<div class='card'><b>{_e(val)}</b><span>{_e(k)}</span></div>"
                                           for k, val in items) + "</div>"


def _change_section(d: ReportData) -> str:
    if d.previous is None or d.diff is None:
        return "<h2>Change against the previous version</h2><p class='meta'>No earlier version to compare with.</p>"
    p, diff = d.previous, d.diff
    changed = diff.total("added") + diff.total("removed")
    parts = [f"<h2>Change against {_e(p.name)}</h2>",
             f"<p class='meta'>{_n(diff.total('added'))} documents added ({_n(diff.total('added', 'tokens'))} "
             f"tokens), {_n(diff.total('removed'))} removed ({_n(diff.total('removed', 'tokens'))} tokens)"
             + ("; the config changed (params hash differs)." if diff.params_changed else "; same config.")
             + ("" if changed else f" The kept documents of {_e(d.version.name)} are those of {_e(p.name)}.")
             + "</p>"]
    if changed:
        parts.append(_figure(plots.change_bars(diff.changes), "documents added and removed by reason",
                             f"Kept documents added (up) and removed (down) going from {p.name} to "
                             f"{d.version.name}."))
    if diff.changes:
        parts.append(_table(["change", "source", "reason", "documents", "tokens"],
                            [[_e(r["change"]), f"<code>{_e(r['source'])}</code>", _e(r["reason"]), _n(r["docs"]),
                              _n(r["tokens"])] for r in diff.changes], {3, 4}))
    parts.append(_table(["table", p.name, d.version.name, "change"],
                        [[_e(t), _n(a), _n(b), f"{b - a:+,}"] for t, (a, b) in diff.tables.items()], {1, 2, 3}))
    if d.checks:
        parts.append("<h2>Monitoring checks</h2>")
        parts.append(_table(["check", "value", "threshold", "result", "detail"],
                            [[_e(c.name), "" if c.value is None else _n(c.value),
                              "" if c.threshold is None else _n(c.threshold),
                              "<span class='ok'>ok</span>" if c.ok else "<span class='warn'>WARNING</span>",
                              _e(c.detail)] for c in d.checks], {1, 2}))
    return "".join(parts)


def _counts(run: dict[str, Any]) -> str:
    return _e(", ".join(f"{k}={v:,}" for k, v in run.get("counts", {}).items()))


def _stages_section(d: ReportData) -> list[str]:
    """Per stage, the last run that did work (its counts and seconds) and when the stage last ran, from the
    run history; a stage without history (a lake written before it) shows its metrics file, the last run."""
    rows: list[list[object]] = []
    for r in d.runs:
        last, worked = r["last"], r["worked"]
        when = _e(last["finished_at"]) + ("" if last.get("did_work") else " (nothing new)")
        rows.append([_e(r["stage"]), when, _e(worked["finished_at"]) if worked else "none recorded",
                     _n(float(worked.get("seconds", 0))) if worked else "", _counts(worked) if worked else ""])
    recorded = {r["stage"] for r in d.runs}
    rows += [[_e(s["stage"]), "before the run history", "", _n(float(s.get("seconds", 0))), _counts(s)]
             for s in d.stages if s["stage"] not in recorded]
    if not rows:
        return []
    return ["<h2>Stage runs</h2>",
            "<p class='meta'>The counts are those of each stage's last run that did work; a later run with "
            "nothing new committed nothing.</p>",
            _table(["stage", "last run (UTC)", "last run that did work", "seconds", "counts"], rows, {3})]


def _similarity_figure(d: ReportData) -> list[str]:
    s = d.removal_similarity
    if not s.size:
        return []
    return [_figure(plots.similarity_hist(s), "similarity of near-duplicate removals",
                    f"{_n(int(s.size))} near-duplicate removals; each document's own Jaccard similarity to the "
                    f"document kept in its place (lowest {s.min():.3f}, median {np.median(s):.3f}).")]


def render_html(d: ReportData) -> str:
    """The whole page as one string (figures inline)."""
    v = d.version
    names = (v.name, d.previous.name if d.previous else "previous")
    snaps = ", ".join(f"{t}@{s}" for t, s in v.snapshots.items() if s is not None)
    body = [f"<h1>tokenmill dataset report: {_e(v.name)}</h1>",
            f"<p class='meta'>created {_e(v.created_at)} · params {_e((v.params_hash or '')[:12])} · git "
            f"{_e((v.git_sha or 'unknown')[:12])}" + (f" · {_e(v.message)}" if v.message else "") + "</p>",
            f"<p class='meta'>snapshots: <code>{_e(snaps)}</code><br>manifest: <code>{_e(v.manifest_uri)}</code></p>",
            _cards(d), "<h2>Document outcomes</h2>",
            _figure(plots.decisions_bar(d.outcomes), "documents per outcome",
                    "Every raw document ends kept, filtered (with the filter's reason code) or a duplicate "
                    "(exact or near)."),
            ]
    if d.quarantine:
        body.append(_table(["quarantine error", "records"], [[_e(k), _n(c)] for k, c in
                                                             sorted(d.quarantine.items(), key=lambda x: -x[1])], {1}))
    if d.signals:
        body += ["<h2>Quality signals</h2>",
                 _figure(plots.signal_histograms(d.signals, SIGNAL_AXES), "quality signal distributions",
                         SIGNALS_CAPTION)]
    body += ["<h2>Duplicate clusters</h2>",
             _figure(plots.cluster_size_hist(d.cluster_sizes), "duplicate cluster sizes",
                     f"{_n(int(d.cluster_sizes.size))} cluster(s); largest {_n(int(d.cluster_sizes.max())) if d.cluster_sizes.size else 0}"
                     " documents. Each cluster keeps one document."),
             *_similarity_figure(d),
             "<h2>Language mix</h2>",
             _figure(plots.language_bars(d.languages, d.previous_languages, labels=names), "language mix",
                     "Share of kept documents per language (fastText lid.176), next to the previous version."),
             "<h2>Document length</h2>",
             _figure(plots.token_length_hist(d.n_tokens, d.previous_n_tokens, labels=names), "tokens per document",
                     "Tokens per kept document (log scale); the outline is the previous version."),
             "<h2>Shards</h2>",
             _figure(plots.shard_size_bars(d.shard_sizes, d.target_bytes), "shard sizes",
                     f"{len(d.shard_sizes)} shards; dashed line: the target size. Only the last shard should be "
                     "well short of it."),
             _change_section(d)]
    body += _stages_section(d)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body.append(f"<p class='meta'>written by tokenmill at {stamp}</p>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>tokenmill report: {_e(v.name)}</title><style>{CSS}</style></head>"
            f"<body><main>{''.join(body)}</main></body></html>\n")


def write_report(cfg: Config, output: str | Path, version: str = "current", against: str | None = None) -> Path:
    """Collect, render and write the report atomically; returns the path written."""
    data = collect_report(cfg, version, against)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(render_html(data), encoding="utf-8")
    tmp.replace(out)
    log.info("report: %s (%d bytes)", out, out.stat().st_size)
    return out
