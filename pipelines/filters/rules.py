"""Helpers every filter family's decisions use, and the always-computed `quality_score`.

Rules run in the published order and the first failing one names the reason; a threshold of None (or 0,
as in the reference implementations) disables its rule. Ratios over an empty denominator are NaN and never
fail a rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipelines.filters import stats as S


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, NaN where den is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def first_reason(n: int, checks: Sequence[tuple[str, np.ndarray | None]]) -> np.ndarray:
    """Object array of the first reason whose mask is True per document, "" where none is (None: rule off)."""
    out = np.full(n, "", dtype=object)
    for reason, mask in reversed(checks):
        if mask is not None:
            out[mask] = reason
    return out


def quality_score(st: np.ndarray) -> np.ndarray:
    """Heuristic quality in [0, 1] (higher is better): the mean of four sub-scores, each in [0, 1]:
    words up to 50 (min(1, words/50)), share of tokens with a letter, share of non-blank lines ending in
    sentence punctuation, and 1 - share of characters in duplicated lines. An empty document scores 0."""
    words = np.minimum(1.0, st[:, S.N_NONSYMBOL] / 50.0)
    alpha = np.nan_to_num(ratio(st[:, S.N_ALPHA_WORDS], st[:, S.N_WORDS]))
    punct = np.nan_to_num(ratio(st[:, S.FW_PUNCT_LINES], st[:, S.FW_LINES]))
    dup = np.nan_to_num(ratio(st[:, S.FW_DUP_LINE_CHARS], st[:, S.N_CHARS] - st[:, S.N_NEWLINES]))
    score = (words + alpha + punct + np.clip(1.0 - dup, 0.0, 1.0)) / 4.0
    return np.where(st[:, S.N_CHARS] > 0, np.clip(score, 0.0, 1.0), 0.0)
