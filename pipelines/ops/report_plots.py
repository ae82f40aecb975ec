"""The report's figures: each function takes plain arrays or dicts and returns a PNG as a base64 string.

Figures are drawn on `matplotlib.figure.Figure` objects directly (no pyplot, no global state, no display
backend), so building a report is safe in a headless job and in threads.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
        raise MissingDependencyError("the HTML report needs matplotlib (a tokenmill dependency): pip install matplotlib") from None
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


@dataclass(frozen=True)
class PanelNote:
    """What :func:`histogram_panel` did to make a distribution readable, for captions and tests: the share of
    values that are exactly 0 (left out of the bars when they are the majority), how many values fell
    outside the drawn range and were counted into the edge bins, and the scales it chose."""

    n: int
    zero_share: float
    zeros_split: bool
    clipped_low: int
    clipped_high: int
    log_x: bool
    log_y: bool


def _drawn_range(values: np.ndarray, q: float) -> tuple[float, float]:
    """Range the bins cover: the values within half the central (``q`` to ``1 - q`` quantile) range beyond
    those quantiles; only values farther out than that are outliers, counted into the edge bins."""
    qlo, qhi = (float(x) for x in np.quantile(values, [q, 1 - q]))
    span = max(qhi - qlo, 1e-12)
    inside = values[(values >= qlo - 0.5 * span) & (values <= qhi + 0.5 * span)]
    return float(inside.min()), float(inside.max())


def _share(x: float) -> str:
    """A share as a percentage that never rounds a non-zero share to 0% or a partial one to 100%."""
    if 0 < x < 0.005:
        return "<1%"
    if 0.995 <= x < 1:
        return ">99%"
    return f"{x:.0%}"


def _value(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def histogram_panel(ax: Axes, series: Sequence[tuple[str, np.ndarray, str]], *, xlabel: str, title: str,
                    ylabel: str = "documents", clip_quantile: float = 0.01, zero_split: float = 0.5,
                    bins: int = 30) -> PanelNote:
    """Draw overlaid histograms of ``series`` (label, values, colour) on ``ax`` so a skewed signal stays
    readable: NaNs are dropped; when at least ``zero_split`` of all values are exactly 0 the bars show the
    non-zero values only and the title gives the share non-zero; values beyond the ``clip_quantile``
    quantiles that lie far out are counted into the edge bins (and said so in the corner); heavy-tailed
    positive values get log-spaced bins on a log x axis; very uneven bin counts a log y axis. Axis labels
    are always set. Returns what was done."""
    clean = [(label, np.asarray(v, dtype=np.float64)[~np.isnan(np.asarray(v, dtype=np.float64))], color)
             for label, v, color in series]
    every = np.concatenate([v for _, v, _ in clean]) if clean else np.zeros(0)
    n = int(every.size)
    zero_share = float((every == 0).mean()) if n else 0.0
    split = n > 0 and zero_share >= zero_split
    if split:
        clean = [(label, v[v != 0], color) for label, v, color in clean]
        every = every[every != 0]
        title = f"{title}: {_share(1 - zero_share)} non-zero"
    ax.set_title(title, fontsize=8)
    ax.set_xlabel(xlabel, fontsize=7)
    ax.set_ylabel(ylabel, fontsize=7)
    ax.tick_params(labelsize=6)
    if every.size == 0:
        ax.text(0.5, 0.5, "all 0" if n else "no values", ha="center", va="center", transform=ax.transAxes,
                fontsize=8)
        return PanelNote(n, zero_share, split, 0, 0, False, False)
    lo, hi = _drawn_range(every, clip_quantile)
    median = float(np.median(every))
    log_x = lo > 0 and hi > 20 * median
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.geomspace(lo, hi, bins + 1) if log_x else np.linspace(lo, hi, bins + 1)
    low, high = int((every < lo).sum()), int((every > hi).sum())
    peak = 0
    for label, v, color in clean:
        if v.size:
            counts, _, _ = ax.hist(np.clip(v, lo, hi), bins=edges.tolist(), color=color, alpha=0.7, label=label)
            peak = max(peak, int(np.max(counts)))
    every_counts, _ = np.histogram(np.clip(every, lo, hi), bins=edges)
    nonzero = every_counts[every_counts > 0]
    log_y = nonzero.size > 1 and peak >= 50 * float(np.median(nonzero))
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    notes = ([f"{low:,} below {_value(lo)}"] if low else []) + ([f"{high:,} above {_value(hi)}"] if high else [])
    if notes:
        ax.text(0.98, 0.96, "; ".join(notes) + "\n(in the edge bins)", ha="right", va="top",
                transform=ax.transAxes, fontsize=6, color="#52606d")
    return PanelNote(n, zero_share, split, low, high, log_x, log_y)


def legend_patches(ax: Axes, items: Sequence[tuple[str, str]], **kwargs: Any) -> None:
    """A legend with one filled swatch per (label, colour), whatever the artists drawn (or not drawn)."""
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(facecolor=c, edgecolor=c, label=label) for label, c in items], frameon=False,
              **kwargs)


def signal_histograms(signals: Mapping[str, tuple[np.ndarray, np.ndarray]],
                      axis_labels: Mapping[str, str] | None = None) -> str:
    """Small multiples, one :func:`histogram_panel` per numeric signal that has values, kept vs dropped
    documents; ``axis_labels`` gives each signal's x-axis label (default: its name)."""
    names = [name for name, pair in signals.items() if any((~np.isnan(v)).any() for v in pair)]
    ncols = 3
    nrows = max(1, -(-len(names) // ncols))
    fig, axes = _figure(9.5, 2.3 * nrows, ncols=ncols, nrows=nrows)
    for ax, name in zip(axes, names, strict=False):
        kept, dropped = signals[name]
        histogram_panel(ax, [("kept", kept, KEPT), ("dropped", dropped, DROPPED)],
                        xlabel=(axis_labels or {}).get(name, name), title=name)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    if names:
        legend_patches(axes[0], [("kept", KEPT), ("dropped", DROPPED)], fontsize=7, loc="upper center")
    return to_png_base64(fig)


def cluster_size_hist(sizes: np.ndarray) -> str:
    """How many duplicate clusters have each size (members including the kept one); log-scaled counts."""
    fig, (ax,) = _figure()
    if sizes.size:
        values, counts = np.unique(sizes, return_counts=True)
        ax.bar(values, counts, color=DROPPED, width=0.8)
        if values.size <= 30:
            ax.set_xticks(values)
        # at least five sizes wide, so a single size is a bar, not a band across the chart
        ax.set_xlim(float(values.min()) - 0.6, float(max(values.max(), values.min() + 4)) + 0.6)
        if counts.max() >= 20:
            ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no duplicate clusters", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("cluster size (documents)")
    ax.set_ylabel("clusters")
    return to_png_base64(fig)


def similarity_hist(values: np.ndarray) -> str:
    """How similar each near-duplicate removal was to the document kept in its place (0.01-wide bins)."""
    fig, (ax,) = _figure()
    ax.hist(values, bins=np.arange(np.floor(values.min() * 100) / 100, 1.01, 0.01).tolist(), color=DROPPED)
    ax.set_xlabel("Jaccard similarity to the kept document")
    ax.set_ylabel("removed documents")
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
    legend_patches(ax, [(labels[0], KEPT)] + ([(labels[1], PREVIOUS)] if previous else []), fontsize=8)
    ax.set_xticks(x, langs, fontsize=8)
    ax.set_xlim(-0.6, max(len(langs), 5) - 0.4)  # one language is a bar, not a band across the chart
    ax.set_ylim(0, 1.15 * max([current.get(k, 0) / total for k in langs] + [0.01]))  # room for the legend
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.set_xlabel("language (ISO 639 code)")
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
    """Bytes per shard in order (see :func:`draw_shard_sizes`) as a PNG."""
    fig, (ax,) = _figure()
    draw_shard_sizes(ax, sizes, target_bytes)
    return to_png_base64(fig)


def draw_shard_sizes(ax: Axes, sizes: Sequence[int], target_bytes: int | None) -> None:
    """Bytes per shard in order (numbered from 1), with the target size as a line; the last shard is usually
    the short one. A few shards get one tick and a size label each, on an axis at least five shards wide, so
    one shard is a bar among empty slots rather than a band across the whole chart."""
    if sizes:
        mib = np.asarray(sizes, dtype=np.float64) / 2**20
        x = np.arange(1, len(mib) + 1)
        bars = ax.bar(x, mib, color=KEPT, width=0.8 if len(mib) < 200 else 1.0)
        if len(mib) <= 12:
            ax.bar_label(bars, labels=[f"{v:,.2f}" for v in mib], padding=2, fontsize=7)
            ax.set_xticks(x)
        else:
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(nbins="auto", steps=[1, 2, 2.5, 5, 10], integer=True))
        ax.set_xlim(0.3, max(len(mib), 5) + 0.7)
        if target_bytes:
            from matplotlib.lines import Line2D

            ax.axhline(target_bytes / 2**20, color=ACCENT, linestyle="--", linewidth=1)
            ax.set_ylim(0, max(float(mib.max()), target_bytes / 2**20) * 1.18)  # room for the legend
            ax.legend(handles=[Line2D([], [], color=ACCENT, linestyle="--", label="target")], fontsize=8,
                      frameon=False)
    else:
        ax.text(0.5, 0.5, "no shards", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("shard number")
    ax.set_ylabel("MiB")


def change_bars(changes: Sequence[Mapping[str, object]]) -> str:
    """Documents added (up) and removed (down) against the previous version, by reason."""
    added: dict[str, int] = {}
    removed: dict[str, int] = {}
    for r in changes:
        if not int(r["docs"]):  # type: ignore[call-overload]
            continue
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
        legend_patches(ax, [("added", KEPT), ("removed", DROPPED)], fontsize=8)
        ax.set_xlabel("why: an added document's decision in the earlier version, a removed one's now")
    else:
        ax.text(0.5, 0.5, "no documents added or removed", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("documents")
    return to_png_base64(fig)
