"""Decisions of the count-based filter families, vectorized over a batch's signal matrices.

Each function takes the counts of `pipelines.filters.stats` plus plain thresholds and returns one reason
code per document ("" = keep). Rules run in the published order and the first failing one names the
reason; a threshold of None (or 0, as in the reference implementations) disables its rule. Ratios over an
empty denominator are NaN and never fail a rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipelines.filters import stats as S


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def first_reason(n: int, checks: Sequence[tuple[str, np.ndarray | None]]) -> np.ndarray:
    """Object array of the first reason whose mask is True per document, "" where none is."""
    out = np.full(n, "", dtype=object)
    for reason, mask in reversed(checks):
        if mask is not None:
            out[mask] = reason
    return out


def gopher_quality_reasons(
    st: np.ndarray, *, min_doc_words: int | None, max_doc_words: int | None, min_avg_word_length: float | None,
    max_avg_word_length: float | None, max_symbol_word_ratio: float | None, max_bullet_lines_ratio: float | None,
    max_ellipsis_lines_ratio: float | None, min_alpha_words_ratio: float | None, min_stop_words: int | None,
) -> np.ndarray:  # fmt: skip
    """Gopher quality rules on a `word_line_stats` matrix (reason codes as datatrove names them)."""
    words = st[:, S.N_NONSYMBOL]
    tokens = st[:, S.N_WORDS]
    avg = _ratio(st[:, S.NONSYMBOL_CHARS], words)
    lines = st[:, S.N_LINES]
    checks = [
        ("gopher_short_doc", words < min_doc_words if min_doc_words else None),
        ("gopher_long_doc", words > max_doc_words if max_doc_words else None),
        ("gopher_below_avg_threshold", avg < min_avg_word_length if min_avg_word_length else None),
        ("gopher_above_avg_threshold", avg > max_avg_word_length if max_avg_word_length else None),
        ("gopher_too_many_hashes",
         _ratio(st[:, S.N_HASH], tokens) > max_symbol_word_ratio if max_symbol_word_ratio else None),
        ("gopher_too_many_ellipsis",
         _ratio(st[:, S.N_ELLIPSIS], tokens) > max_symbol_word_ratio if max_symbol_word_ratio else None),
        ("gopher_too_many_bullets",
         _ratio(st[:, S.N_BULLET_LINES], lines) > max_bullet_lines_ratio if max_bullet_lines_ratio else None),
        ("gopher_too_many_end_ellipsis",
         _ratio(st[:, S.N_ELLIPSIS_LINES], lines) > max_ellipsis_lines_ratio if max_ellipsis_lines_ratio else None),
        ("gopher_below_alpha_threshold",
         _ratio(st[:, S.N_ALPHA_WORDS], tokens) < min_alpha_words_ratio if min_alpha_words_ratio else None),
        ("gopher_enough_stop_words", st[:, S.N_STOP_WORDS] < min_stop_words if min_stop_words else None),
    ]  # fmt: skip
    return first_reason(len(st), checks)


def repetition_fractions(
    st: np.ndarray, rep: np.ndarray, top_ns: Sequence[int], dup_ns: Sequence[int]
) -> dict:
    """Named fractions of a `repetition_stats` matrix: element fractions per element, char fractions per char."""
    chars = st[:, S.N_CHARS]
    out = {
        "dup_para_frac": _ratio(rep[:, S.DUP_PARAS], rep[:, S.N_PARAS]),
        "dup_para_char_frac": _ratio(rep[:, S.DUP_PARA_CHARS], chars),
        "dup_line_frac": _ratio(rep[:, S.DUP_LINES], rep[:, S.N_REP_LINES]),
        "dup_line_char_frac": _ratio(rep[:, S.DUP_LINE_CHARS], chars),
    }
    for i, n in enumerate(top_ns):
        out[f"top_{n}_gram_char_frac"] = _ratio(rep[:, S.N_REP_FIXED + i], chars)
    for j, n in enumerate(dup_ns):
        out[f"dup_{n}_gram_char_frac"] = _ratio(rep[:, S.N_REP_FIXED + len(top_ns) + j], chars)
    return out


def gopher_repetition_reasons(
    fr: dict, n: int, *, dup_line_frac: float | None, dup_para_frac: float | None,
    dup_line_char_frac: float | None, dup_para_char_frac: float | None,
    top_n_grams: Sequence[tuple[int, float]], dup_n_grams: Sequence[tuple[int, float]],
) -> np.ndarray:  # fmt: skip
    """Gopher repetition rules on `repetition_fractions` (datatrove's reason names)."""
    checks = [
        ("dup_para_frac", fr["dup_para_frac"] > dup_para_frac if dup_para_frac else None),
        ("dup_para_char_frac", fr["dup_para_char_frac"] > dup_para_char_frac if dup_para_char_frac else None),
        ("dup_line_frac", fr["dup_line_frac"] > dup_line_frac if dup_line_frac else None),
        ("dup_line_char_frac", fr["dup_line_char_frac"] > dup_line_char_frac if dup_line_char_frac else None),
    ]
    checks += [(f"top_{k}_gram", fr[f"top_{k}_gram_char_frac"] > f) for k, f in top_n_grams]
    checks += [(f"duplicated_{k}_n_grams", fr[f"dup_{k}_gram_char_frac"] > f) for k, f in dup_n_grams]
    return first_reason(n, checks)


def fineweb_fractions(st: np.ndarray) -> dict:
    """FineWeb's ratios from a `word_line_stats` matrix."""
    return {
        "line_punct_ratio": _ratio(st[:, S.FW_PUNCT_LINES], st[:, S.FW_LINES]),
        "short_line_ratio": _ratio(st[:, S.FW_SHORT_LINES], st[:, S.FW_LINES]),
        "char_dup_ratio": _ratio(st[:, S.FW_DUP_LINE_CHARS], st[:, S.N_CHARS] - st[:, S.N_NEWLINES]),
        "newline_word_ratio": _ratio(st[:, S.N_NEWLINES], st[:, S.N_WORDS]),
    }


def fineweb_reasons(
    st: np.ndarray, fr: dict, *, line_punct_thr: float, line_punct_exclude_zero: bool, short_line_thr: float,
    char_duplicates_ratio: float, new_line_ratio: float,
) -> np.ndarray:  # fmt: skip
    """FineWeb quality rules (datatrove's reason names); a document without a non-blank line is `empty`."""
    punct = fr["line_punct_ratio"]
    low_punct = punct < line_punct_thr
    if line_punct_exclude_zero:
        low_punct &= punct != 0
    checks = [
        ("empty", st[:, S.FW_LINES] == 0),
        ("line_punct_ratio", low_punct),
        ("short_line_ratio", fr["short_line_ratio"] > short_line_thr),
        ("char_dup_ratio", fr["char_dup_ratio"] > char_duplicates_ratio),
        ("list_ratio", fr["newline_word_ratio"] > new_line_ratio),
    ]
    return first_reason(len(st), checks)


def quality_score(st: np.ndarray) -> np.ndarray:
    """Heuristic quality in [0, 1] (higher is better): the mean of four sub-scores, each in [0, 1]:
    words up to 50 (min(1, words/50)), share of tokens with a letter, share of non-blank lines ending in
    sentence punctuation, and 1 - share of characters in duplicated lines. An empty document scores 0."""
    words = np.minimum(1.0, st[:, S.N_NONSYMBOL] / 50.0)
    alpha = np.nan_to_num(_ratio(st[:, S.N_ALPHA_WORDS], st[:, S.N_WORDS]))
    punct = np.nan_to_num(_ratio(st[:, S.FW_PUNCT_LINES], st[:, S.FW_LINES]))
    dup = np.nan_to_num(_ratio(st[:, S.FW_DUP_LINE_CHARS], st[:, S.N_CHARS] - st[:, S.N_NEWLINES]))
    score = (words + alpha + punct + np.clip(1.0 - dup, 0.0, 1.0)) / 4.0
    return np.where(st[:, S.N_CHARS] > 0, np.clip(score, 0.0, 1.0), 0.0)
