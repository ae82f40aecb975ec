"""The report's figures: each function takes plain arrays or dicts and returns a PNG as a base64 string.

Figures are drawn on `matplotlib.figure.Figure` objects directly (no pyplot, no global state, no display
backend), so building a report is safe in a headless job and in threads.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from pipelines.errors import MissingDependencyError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

KEPT, DROPPED, PREVIOUS, ACCENT = "#2b7bba", "#e07b39", "#9aa5b1", "#c0392b"


def _figure(width: float = 7.0, height: float = 3.2, ncols: int = 1, nrows: int = 1) -> tuple[Figure, list[Axes]]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("the HTML report needs matplotlib: pip install 'tokenmill[report]'") from None
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", alpha=0.3)
    return fig, axes


def to_png_base64(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _log_bins(values: np.ndarray, n: int = 40) -> np.ndarray:
    lo, hi = max(1.0, float(values.min())), max(2.0, float(values.max()))
    return np.unique(np.geomspace(lo, hi * 1.001, n))


def decisions_bar(counts: Mapping[str, int]) -> str:
    """Horizontal bars: documents per outcome (`kept`, `filtered:<reason>`, `duplicate:<exact|near>`)."""
    labels = sorted(counts, key=lambda k: (k != "kept", -counts[k], k))
    fig, (ax,) = _figure(7.0, 0.45 * len(labels) + 1.0)
    colors = [KEPT if k == "kept" else DROPPED for k in labels]
    bars = ax.barh(labels[::-1], [counts[k] for k in labels][::-1], color=colors[::-1])
    ax.bar_label(bars, labels=[f"{counts[k]:,}" for k in labels][::-1], padding=3, fontsize=8)
    ax.set_xlabel("documents")
    ax.grid(axis="x", alpha=0.3)
    ax.grid(axis="y", visible=False)
    return to_png_base64(fig)


def signal_histograms(signals: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """Small multiples, one per numeric signal that has values: distribution over kept vs dropped documents.
    Heavy-tailed counts (e.g. n_chars) get log-spaced bins on a log axis."""
    finite = {name: tuple(v[~np.isnan(v)] for v in pair) for name, pair in signals.items()}
    names = [name for name, (kept, dropped) in finite.items() if kept.size + dropped.size]
    ncols = 4
    nrows = max(1, -(-len(names) // ncols))
    fig, axes = _figure(9.5, 1.9 * nrows, ncols=ncols, nrows=nrows)
    for ax, name in zip(axes, names, strict=False):
        kept, dropped = finite[name]
        both = np.concatenate([kept, dropped])
        lo, hi = float(both.min()), float(both.max())
        heavy = lo >= 0 and hi > 50 * (float(np.median(both)) + 1)
        edges = _log_bins(both, 30) if heavy else np.linspace(lo, hi if hi > lo else lo + 1, 30)
        bins = edges.tolist()
        ax.hist(kept, bins=bins, color=KEPT, alpha=0.75, label="kept")
        if dropped.size:
            ax.hist(dropped, bins=bins, color=DROPPED, alpha=0.6, label="dropped")
        if heavy:
            ax.set_xscale("log")
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    if names:
        axes[0].legend(fontsize=7, frameon=False)
    return to_png_base64(fig)


def cluster_size_hist(sizes: np.ndarray) -> str:
    """How many duplicate clusters have each size (members including the kept one); log-scaled counts."""
    fig, (ax,) = _figure()
    if sizes.size:
        values, counts = np.unique(sizes, return_counts=True)
        ax.bar(values.astype(str) if values.size <= 30 else values, counts, color=DROPPED)
        if counts.max() >= 20:
            ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no duplicate clusters", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("cluster size (documents)")
    ax.set_ylabel("clusters")
    return to_png_base64(fig)


def language_bars(current: Mapping[str, int], previous: Mapping[str, int] | None, top: int = 15,
                  labels: tuple[str, str] = ("this version", "previous")) -> str:
    """Share of kept documents per language (top `top`), next to the previous version's share."""
    total = sum(current.values()) or 1
    langs = sorted(current, key=lambda k: -current[k])[:top]
    if previous:
        langs += [k for k in sorted(previous, key=lambda k: -previous[k]) if k not in langs][: max(0, top - len(langs))]
    fig, (ax,) = _figure()
    x = np.arange(len(langs))
    width = 0.4 if previous else 0.8
    ax.bar(x - (width / 2 if previous else 0), [current.get(k, 0) / total for k in langs], width, color=KEPT,
           label=labels[0])
    if previous:
        ptotal = sum(previous.values()) or 1
        ax.bar(x + width / 2, [previous.get(k, 0) / ptotal for k in langs], width, color=PREVIOUS, label=labels[1])
        ax.legend(fontsize=8, frameon=False)
    ax.set_xticks(x, langs, fontsize=8)
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.set_ylabel("share of kept documents")
    return to_png_base64(fig)


def token_length_hist(n_tokens: np.ndarray, previous: np.ndarray | None = None,
                      labels: tuple[str, str] = ("this version", "previous")) -> str:
    """Document length in tokens, log-spaced bins, with the previous version's outline when given."""
    fig, (ax,) = _figure()
    if n_tokens.size:
        both = np.concatenate([n_tokens, previous]) if previous is not None and previous.size else n_tokens
        bins = _log_bins(both.astype(np.float64)).tolist()
        ax.hist(n_tokens, bins=bins, color=KEPT, alpha=0.8, label=labels[0])
        if previous is not None and previous.size:
            ax.hist(previous, bins=bins, histtype="step", color="#333333", linewidth=1.2, label=labels[1])
            ax.legend(fontsize=8, frameon=False)
        ax.set_xscale("log")
        ax.axvline(float(np.median(n_tokens)), color=ACCENT, linestyle="--", linewidth=1)
    else:
        ax.text(0.5, 0.5, "no tokenized documents", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("tokens per document (dashed: median)")
    ax.set_ylabel("documents")
    return to_png_base64(fig)


def shard_size_bars(sizes: Sequence[int], target_bytes: int | None) -> str:
    """Bytes per shard in order, with the target size as a line; the last shard is usually the short one."""
    fig, (ax,) = _figure()
    if sizes:
        mib = np.asarray(sizes, dtype=np.float64) / 2**20
        ax.bar(np.arange(len(mib)), mib, color=KEPT, width=0.9 if len(mib) < 200 else 1.0)
        if target_bytes:
            ax.axhline(target_bytes / 2**20, color=ACCENT, linestyle="--", linewidth=1, label="target")
            ax.legend(fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "no shards", ha="center", va="center", transform=ax.transAxes)
    from matplotlib.ticker import MaxNLocator

    # matplotlib's default locator with whole shard numbers only
    ax.xaxis.set_major_locator(MaxNLocator(nbins="auto", steps=[1, 2, 2.5, 5, 10], integer=True))
    ax.set_xlabel("shard")
    ax.set_ylabel("MiB")
    return to_png_base64(fig)


def change_bars(changes: Sequence[Mapping[str, object]]) -> str:
    """Documents added (up) and removed (down) against the previous version, by reason."""
    added: dict[str, int] = {}
    removed: dict[str, int] = {}
    for r in changes:
        side = added if r["change"] == "added" else removed
        side[str(r["reason"])] = side.get(str(r["reason"]), 0) + int(r["docs"])  # type: ignore[call-overload]
    reasons = sorted(set(added) | set(removed))
    fig, (ax,) = _figure(7.0, 3.4)
    if reasons:
        x = np.arange(len(reasons))
        ax.bar(x, [added.get(k, 0) for k in reasons], color=KEPT, label="added")
        ax.bar(x, [-removed.get(k, 0) for k in reasons], color=DROPPED, label="removed")
        ax.axhline(0, color="#333333", linewidth=0.8)
        ax.set_xticks(x, reasons, rotation=20, ha="right", fontsize=8)
        ax.legend(fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "no documents added or removed", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("documents")
    return to_png_base64(fig)
