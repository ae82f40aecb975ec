"""`c4_quality`: C4's line and document rules (Raffel et al. 2020, section 2.2) as one kernel over a batch.

Lines (as `str.splitlines`, each stripped) are kept only when they end in terminal punctuation (. ? ! " ')
and not in an ellipsis, have at least `min_words_per_line` whitespace-separated words, no word longer
than `max_word_length`, and do not mention javascript or a cookie/terms-of-use phrase. Citation marks
([1], [edit], [citation needed]) are removed first. A document is dropped when a kept line holds
"lorem ipsum" (`lorem_ipsum`) or a curly bracket (`curly_bracket`), or when its kept lines hold fewer than
`min_num_sentences` sentences (`too_few_sentences`). Kept documents get the kept lines joined by "\\n".
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from pipelines.filters.base import BaseFilter, BatchContext, FilterResult
from pipelines.filters.chars import LINEBREAK, SPACE, TERMINAL, UPUNCT
from pipelines.filters.counts import abbreviations, word_list
from pipelines.filters.words import _split_chunk, has

C4_REASONS = ("", "lorem_ipsum", "curly_bracket", "too_few_sentences")
POLICY_PHRASES = (
    "terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies",
)  # fmt: skip


@njit(cache=True)
def _contains_lower(buf, n, pats, p_off, j) -> bool:
    """Whether buf[:n], ASCII-lowercased, contains pattern j (given in lower case)."""
    s, e = p_off[j], p_off[j + 1]
    m = e - s
    for i in range(n - m + 1):
        ok = True
        for q in range(m):
            c = buf[i + q]
            if 65 <= c <= 90:
                c += 32
            if c != pats[s + q]:
                ok = False
                break
        if ok:
            return True
    return False


_EDIT = np.array([ord(c) for c in "edit]"], dtype=np.int32)
_CITATION_NEEDED = np.array([ord(c) for c in "citation needed]"], dtype=np.int32)


@njit(cache=True)
def _match_at(cps, i, e, pat) -> int:
    """len(pat) when cps[i:e] starts with pat, else 0."""
    m = pat.shape[0]
    if i + m > e:
        return 0
    for q in range(m):
        if cps[i + q] != pat[q]:
            return 0
    return m


@njit(cache=True)
def _strip_citations(cps, s, e, out) -> int:
    """Copy cps[s:e] to out without "[digits]", "[edit]" and "[citation needed]"; returns the length."""
    n = 0
    i = s
    while i < e:
        if cps[i] == 91:  # '['
            j = i + 1
            while j < e and 48 <= cps[j] <= 57:
                j += 1
            if j < e and cps[j] == 93:
                i = j + 1
                continue
            m = _match_at(cps, i + 1, e, _EDIT)
            if m == 0:
                m = _match_at(cps, i + 1, e, _CITATION_NEEDED)
            if m:
                i += 1 + m
                continue
        out[n] = cps[i]
        n += 1
        i += 1
    return n


@njit(cache=True)
def _count_sentences(buf, n, fl, abbr, abbr_off, ts, te, stack) -> int:
    """Sentences in buf[:n]: a sentence ends at a lone terminal mark followed by a word that is not punctuation."""
    k = 0
    i = 0
    while i < n:
        while i < n and has(fl, buf[i], SPACE):
            i += 1
        if i >= n:
            break
        j = i
        while j < n and not has(fl, buf[j], SPACE):
            j += 1
        k = _split_chunk(buf, i, j, fl, abbr, abbr_off, ts, te, k, stack)
        i = j
    if k == 0:
        return 0
    count = 1
    seen_end = False
    for t in range(k):
        is_end = te[t] - ts[t] == 1 and has(fl, buf[ts[t]], TERMINAL)
        is_punct = True
        for q in range(ts[t], te[t]):
            if not has(fl, buf[q], UPUNCT):
                is_punct = False
                break
        if seen_end and not is_punct and not is_end:
            count += 1
            seen_end = False
        elif is_end:
            seen_end = True
    return count


@njit(cache=True)
def c4_lines(
    cps, cp_off, fl, abbr, abbr_off, policy, policy_off, lorem, javascript,
    remove_citations, filter_no_terminal_punct, min_num_sentences, min_words_per_line, max_word_length,
    filter_lorem_ipsum, filter_javascript, filter_curly_bracket, filter_policy,
):  # fmt: skip
    """Apply the C4 rules to every document of a batch.

    Returns (reason index into C4_REASONS per document (int8, 0 = kept), sentences counted, new code
    points, their int64 offsets). Dropped documents keep their text unchanged in the output. Thresholds
    of -1 disable a rule, as in the reference implementation.
    """
    n_docs = cp_off.shape[0] - 1
    reasons = np.zeros(n_docs, dtype=np.int8)
    sentences = np.zeros(n_docs, dtype=np.int64)
    out = np.empty(cps.shape[0], dtype=np.int32)
    out_off = np.empty(n_docs + 1, dtype=np.int64)
    o = 0
    lorem_off = np.array([0, lorem.shape[0]], dtype=np.int64)
    js_off = np.array([0, javascript.shape[0]], dtype=np.int64)
    curly = np.array([123], dtype=np.int32)
    curly_off = np.array([0, 1], dtype=np.int64)
    for d in range(n_docs):
        out_off[d] = o
        a0, b0 = cp_off[d], cp_off[d + 1]
        size = b0 - a0 + 1
        buf = np.empty(size, dtype=np.int32)
        ts = np.empty(size, dtype=np.int64)
        te = np.empty(size, dtype=np.int64)
        stack = np.empty(2 * size, dtype=np.int64)
        doc_start = o
        n_sent = 0
        reason = 0
        i = a0
        while i < b0:
            j = i
            while j < b0 and not has(fl, cps[j], LINEBREAK):
                j += 1
            nxt = j + 2 if (j + 1 < b0 and cps[j] == 13 and cps[j + 1] == 10) else j + 1
            s, e = i, j
            i = nxt
            while s < e and has(fl, cps[s], SPACE):
                s += 1
            while e > s and has(fl, cps[e - 1], SPACE):
                e -= 1
            n_words = 0
            longest = 0
            q = s
            while q < e:
                while q < e and has(fl, cps[q], SPACE):
                    q += 1
                if q >= e:
                    break
                r = q
                while r < e and not has(fl, cps[r], SPACE):
                    r += 1
                n_words += 1
                longest = max(longest, r - q)
                q = r
            if max_word_length != -1 and longest > max_word_length:
                continue
            if remove_citations:
                n = _strip_citations(cps, s, e, buf)
            else:
                n = e - s
                buf[:n] = cps[s:e]
            if filter_no_terminal_punct:
                last = buf[n - 1] if n > 0 else 0
                if not (last == 46 or last == 63 or last == 33 or last == 34 or last == 39):
                    continue
                if n >= 3 and buf[n - 1] == 46 and buf[n - 2] == 46 and buf[n - 3] == 46:
                    continue
            if n_words < min_words_per_line:
                continue
            if filter_lorem_ipsum and _contains_lower(buf, n, lorem, lorem_off, 0):
                reason = 1
                break
            if filter_javascript and _contains_lower(buf, n, javascript, js_off, 0):
                continue
            if filter_curly_bracket and _contains_lower(buf, n, curly, curly_off, 0):
                reason = 2
                break
            if filter_policy:
                hit = False
                for p in range(policy_off.shape[0] - 1):
                    if _contains_lower(buf, n, policy, policy_off, p):
                        hit = True
                        break
                if hit:
                    continue
            if min_num_sentences != -1:
                n_sent += _count_sentences(buf, n, fl, abbr, abbr_off, ts, te, stack)
            if o > doc_start:
                out[o] = 10
                o += 1
            out[o : o + n] = buf[:n]
            o += n
        if reason == 0 and n_sent < min_num_sentences:
            reason = 3
        reasons[d] = reason
        sentences[d] = n_sent
        if reason != 0:
            o = doc_start
            out[o : o + b0 - a0] = cps[a0:b0]
            o += b0 - a0
        else:
            # the joined text is stripped; lines are already stripped, so only empty lines can remain
            s = doc_start
            while s < o and has(fl, out[s], SPACE):
                s += 1
            if s > doc_start:
                m = o - s
                out[doc_start : doc_start + m] = out[s:o].copy()
                o = doc_start + m
            while o > doc_start and has(fl, out[o - 1], SPACE):
                o -= 1
    out_off[n_docs] = o
    return reasons, sentences, out[:o], out_off


@njit(cache=True)
def encode_utf8(cps: np.ndarray, cp_off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Encode code points (int32) with per-document offsets back to UTF-8 bytes and int64 byte offsets."""
    n_docs = cp_off.shape[0] - 1
    out = np.empty(cps.shape[0] * 4, dtype=np.uint8)
    off = np.empty(n_docs + 1, dtype=np.int64)
    k = 0
    for d in range(n_docs):
        off[d] = k
        for i in range(cp_off[d], cp_off[d + 1]):
            c = cps[i]
            if c < 0x80:
                out[k] = c
                k += 1
            elif c < 0x800:
                out[k] = 0xC0 | (c >> 6)
                out[k + 1] = 0x80 | (c & 0x3F)
                k += 2
            elif c < 0x10000:
                out[k] = 0xE0 | (c >> 12)
                out[k + 1] = 0x80 | ((c >> 6) & 0x3F)
                out[k + 2] = 0x80 | (c & 0x3F)
                k += 3
            else:
                out[k] = 0xF0 | (c >> 18)
                out[k + 1] = 0x80 | ((c >> 12) & 0x3F)
                out[k + 2] = 0x80 | ((c >> 6) & 0x3F)
                out[k + 3] = 0x80 | (c & 0x3F)
                k += 4
    off[n_docs] = k
    return out[:k], off


class C4QualityFilter(BaseFilter):
    """C4's line rules (which edit the text) and document rules; -1 disables a numeric rule."""

    name: Literal["c4_quality"] = "c4_quality"
    remove_citations: bool = True
    filter_no_terminal_punct: bool = True
    min_num_sentences: int = 5
    min_words_per_line: int = 3
    max_word_length: int = 1000
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True

    signals = ("c4_sentences",)

    def apply(self, ctx: BatchContext) -> FilterResult:
        tc = ctx.counts
        policy, policy_off = word_list(POLICY_PHRASES)
        codes, sentences, cps, off = c4_lines(
            tc.cps, tc.cp_off, tc.fl, *abbreviations(), policy, policy_off,
            word_list(("lorem ipsum",))[0], word_list(("javascript",))[0],
            self.remove_citations, self.filter_no_terminal_punct, self.min_num_sentences,
            self.min_words_per_line, self.max_word_length, self.filter_lorem_ipsum,
            self.filter_javascript, self.filter_curly_bracket, self.filter_policy,
        )  # fmt: skip
        reasons = np.array(C4_REASONS, dtype=object)[codes]
        # documents this filter keeps get their kept lines; the others keep the text they came with
        take = ctx.alive & (reasons == "")
        if not take.any():
            return FilterResult(reasons, {"c4_sentences": sentences})
        data, boff = encode_utf8(cps, off)
        edited = pa.LargeStringArray.from_buffers(len(off) - 1, pa.py_buffer(boff), pa.py_buffer(data))
        return FilterResult(reasons, {"c4_sentences": sentences}, pc.if_else(pa.array(take), edited, tc.text))
