"""`curate_batch`: normalization, the configured filters in order, reasons and signal columns for one batch.

Called inside a Spark `mapInArrow` task by the curate stage, and directly by tests and benchmarks. The
batch's text is decoded and split into words once; every count-based family reads the same counts. A
filter that edits text (`c4_quality`, `pii`) makes later filters see the edited text, which is then
decoded and split again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.filters import c4 as c4k
from pipelines.filters import rules
from pipelines.filters import stats as S
from pipelines.filters.chars import char_flags, codepoints
from pipelines.filters.config import (
    BadWordsFilter,
    C4QualityFilter,
    FilterSpec,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
    LanguageFilter,
    LengthFilter,
    NormalizeConfig,
    PIIFilter,
)
from pipelines.filters.textual import (
    detect_languages,
    has_bad_words,
    keep_draws,
    language_scoring_text,
    redact_pii,
)
from pipelines.filters.words import ABBREVIATIONS, decode_utf8, split_words
from pipelines.normalize import normalize_text
from schemas.base import TableDef, make_schema
from schemas.signals import SIGNAL_FIELDS

log = logging.getLogger(__name__)

_DEFAULT_STOP_WORDS = tuple(GopherQualityFilter().stop_words)
_DEFAULT_SHORT_LINE = FineWebQualityFilter().short_line_length


@lru_cache(maxsize=1)
def _abbreviations() -> tuple[np.ndarray, np.ndarray]:
    return codepoints(ABBREVIATIONS)


@lru_cache(maxsize=8)
def _word_list(words: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    return codepoints(words)


@lru_cache(maxsize=1)
def _signal_schema() -> pa.Schema:
    """Arrow fields of the signal columns, exactly as the clean_docs/doc_decisions data files have them."""
    return TableDef(name="signals", schema=make_schema(*SIGNAL_FIELDS)).arrow_schema


class TextCounts:
    """Code points, word tokens and counts of one version of a batch's text, each computed on first use."""

    def __init__(self, text: pa.Array) -> None:
        self.text = text.cast(pa.large_string())
        n = len(self.text)
        offsets = np.frombuffer(self.text.buffers()[1], dtype=np.int64)[
            self.text.offset : self.text.offset + n + 1
        ]
        data = self.text.buffers()[2]
        buf = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
        self.fl = char_flags()
        self.cps, self.cp_off = decode_utf8(buf, np.ascontiguousarray(offsets))
        self._tokens: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._stats: dict[tuple, np.ndarray] = {}
        self._rep: dict[tuple, np.ndarray] = {}

    @property
    def tokens(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._tokens is None:
            self._tokens = split_words(self.cps, self.cp_off, self.fl, *_abbreviations())
        return self._tokens

    def stats(self, stop_words: Sequence[str] = _DEFAULT_STOP_WORDS, short_line: int = _DEFAULT_SHORT_LINE):
        key = (tuple(stop_words), short_line)
        if key not in self._stats:
            ts, te, to = self.tokens
            sw, sw_off = _word_list(key[0])
            self._stats[key] = S.word_line_stats(
                self.cps, self.cp_off, ts, te, to, self.fl, sw, sw_off, short_line
            )
        return self._stats[key]

    def repetition(self, top_ns: Sequence[int], dup_ns: Sequence[int]) -> np.ndarray:
        key = (tuple(top_ns), tuple(dup_ns))
        if key not in self._rep:
            ts, te, to = self.tokens
            self._rep[key] = S.repetition_stats(
                self.cps, self.cp_off, ts, te, to, self.fl,
                np.array(key[0], dtype=np.int64), np.array(key[1], dtype=np.int64),
            )  # fmt: skip
        return self._rep[key]


def _codes(words: Sequence[str]) -> np.ndarray:
    return _word_list(tuple(words))[0]


def _run_c4(tc: TextCounts, spec: C4QualityFilter) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    policy, policy_off = _word_list(c4k.POLICY_PHRASES)
    reasons, sentences, cps, off = c4k.c4_lines(
        tc.cps, tc.cp_off, tc.fl, *_abbreviations(), policy, policy_off,
        _codes(["lorem ipsum"]), _codes(["javascript"]),
        spec.remove_citations, spec.filter_no_terminal_punct, spec.min_num_sentences,
        spec.min_words_per_line, spec.max_word_length, spec.filter_lorem_ipsum,
        spec.filter_javascript, spec.filter_curly_bracket, spec.filter_policy,
    )  # fmt: skip
    data, boff = c4k.encode_utf8(cps, off)
    text = pa.LargeStringArray.from_buffers(len(off) - 1, pa.py_buffer(boff), pa.py_buffer(data))
    names = np.array(c4k.C4_REASONS, dtype=object)
    return names[reasons], sentences, text


def curate_batch(
    batch: pa.RecordBatch, *, normalize: NormalizeConfig, filters: list[FilterSpec]
) -> pa.RecordBatch:
    """Normalize `batch.text`, run `filters` in order and add `reason` and the signal columns.

    Output: the same rows in the same order, `text` replaced by the normalized (and, for c4_quality/pii,
    edited) text, `reason` (null = kept, else the first failing filter's reason code) and one column per
    `schemas.signals.SIGNAL_FIELDS` with its exact Arrow type (null where not computed). A filter only
    judges documents that earlier filters kept. Null text is treated as empty text. Never raises on
    document content; raises ValueError when the batch has no string `text` column.
    """
    if "text" not in batch.schema.names:
        raise ValueError(f"batch has no 'text' column (columns: {batch.schema.names})")
    n = batch.num_rows
    raw = batch.column("text")
    text = normalize_text(raw, normalize).cast(pa.large_string()).fill_null("")
    reasons = np.full(n, None, dtype=object)
    sig: dict[str, np.ndarray] = {}
    tc = TextCounts(text)

    for spec in filters:
        alive = reasons == None  # noqa: E711  (elementwise over the object array)
        if isinstance(spec, LengthFilter):
            st = tc.stats()
            got = rules.first_reason(n, [
                ("empty", st[:, S.N_WORDS] == 0),
                ("too_short", st[:, S.N_NONSYMBOL] < spec.min_words),
                ("too_long", st[:, S.N_CHARS] > spec.max_chars),
            ])  # fmt: skip
        elif isinstance(spec, GopherQualityFilter):
            st = tc.stats(stop_words=spec.stop_words)
            params = spec.model_dump(exclude={"name", "stop_words"})
            got = rules.gopher_quality_reasons(st, **params)
            sig["n_stop_words"] = st[:, S.N_STOP_WORDS]
            sig["hash_word_ratio"] = rules._ratio(st[:, S.N_HASH], st[:, S.N_WORDS])
            sig["ellipsis_word_ratio"] = rules._ratio(st[:, S.N_ELLIPSIS], st[:, S.N_WORDS])
            sig["bullet_lines_ratio"] = rules._ratio(st[:, S.N_BULLET_LINES], st[:, S.N_LINES])
            sig["ellipsis_lines_ratio"] = rules._ratio(st[:, S.N_ELLIPSIS_LINES], st[:, S.N_LINES])
        elif isinstance(spec, GopherRepetitionFilter):
            top_ns = [k for k, _ in spec.top_n_grams]
            dup_ns = [k for k, _ in spec.dup_n_grams]
            fr = rules.repetition_fractions(tc.stats(), tc.repetition(top_ns, dup_ns), top_ns, dup_ns)
            got = rules.gopher_repetition_reasons(
                fr, n, **spec.model_dump(exclude={"name", "top_n_grams", "dup_n_grams"}),
                top_n_grams=spec.top_n_grams, dup_n_grams=spec.dup_n_grams,
            )  # fmt: skip
            sig.update(fr)
        elif isinstance(spec, FineWebQualityFilter):
            st = tc.stats(short_line=spec.short_line_length)
            fr = rules.fineweb_fractions(st)
            got = rules.fineweb_reasons(st, fr, **spec.model_dump(exclude={"name", "short_line_length"}))
            sig.update(fr)
        elif isinstance(spec, C4QualityFilter):
            got, sentences, edited = _run_c4(tc, spec)
            sig["c4_sentences"] = sentences
            take = alive & (got == "")
            if take.any():
                tc = TextCounts(pc.if_else(pa.array(take), edited, tc.text))
        elif isinstance(spec, PIIFilter):
            redacted, counts = redact_pii(
                tc.text, emails=spec.emails, ips=spec.ip_addresses, phones=spec.phone_numbers,
                email_sub=spec.email_placeholder, ip_sub=spec.ip_placeholder, phone_sub=spec.phone_placeholder,
            )  # fmt: skip
            sig.update(counts)
            total = counts["pii_emails"] + counts["pii_ips"] + counts["pii_phones"]
            got = rules.first_reason(
                n, [("pii", total > spec.max_matches if spec.max_matches is not None else None)]
            )
            if (total > 0).any():
                tc = TextCounts(pc.if_else(pa.array(alive), redacted, tc.text))
        elif isinstance(spec, LanguageFilter):
            idx = np.flatnonzero(alive)
            texts = tc.text.take(pa.array(idx)).to_pylist()
            if spec.score_lines == "prose":
                texts = [t if t is None else language_scoring_text(t, spec.max_input_chars) for t in texts]
            langs, scores = detect_languages(texts, max_input_chars=spec.max_input_chars)
            lang_col = np.full(n, None, dtype=object)
            score_col = np.full(n, np.nan)
            lang_col[idx] = langs
            score_col[idx] = scores
            ok = np.array(
                [lg is not None and (spec.languages is None or lg in spec.languages) for lg in lang_col]
            )
            with np.errstate(invalid="ignore"):
                ok &= score_col > spec.min_score
            got = rules.first_reason(n, [("language", ~ok)])
            sig["language"], sig["language_score"] = lang_col, score_col
        elif isinstance(spec, BadWordsFilter):
            found = has_bad_words(tc.text)
            if spec.keep_fraction > 0 and found.any():
                ids = (
                    batch.column("doc_id")
                    if "doc_id" in batch.schema.names
                    else pa.array(range(n)).cast(pa.string())
                )
                found &= keep_draws(ids, spec.seed) >= spec.keep_fraction
            sig["has_bad_words"] = found
            got = rules.first_reason(n, [("bad_words", found)])
        else:  # pragma: no cover - the discriminated union admits nothing else
            raise ValueError(f"unknown filter {spec!r}")
        fail = alive & (got != "")
        reasons[fail] = got[fail]

    st = tc.stats()
    sig["n_chars"] = st[:, S.N_CHARS]
    sig["n_words"] = st[:, S.N_NONSYMBOL]
    sig["n_lines"] = st[:, S.N_LINES]
    sig["mean_word_length"] = rules._ratio(st[:, S.NONSYMBOL_CHARS], st[:, S.N_NONSYMBOL])
    sig["alpha_words_ratio"] = rules._ratio(st[:, S.N_ALPHA_WORDS], st[:, S.N_WORDS])
    sig["quality_score"] = rules.quality_score(st)
    return _assemble(batch, raw.type, tc.text, reasons, sig)


def _assemble(batch: pa.RecordBatch, text_type: pa.DataType, text: pa.Array, reasons: np.ndarray, sig: dict):
    names = list(batch.schema.names)
    arrays = list(batch.columns)
    arrays[names.index("text")] = text.cast(text_type if not pa.types.is_null(text_type) else pa.string())
    extra: dict[str, pa.Array] = {"reason": pa.array(reasons.tolist(), type=pa.string())}
    for field in _signal_schema():
        arrow_type = field.type
        values = sig.get(field.name)
        if values is None:
            extra[field.name] = pa.nulls(batch.num_rows, type=arrow_type)
        elif values.dtype == object:
            extra[field.name] = pa.array(values.tolist(), type=arrow_type)
        else:
            mask = np.isnan(values) if values.dtype.kind == "f" else None
            if pa.types.is_integer(arrow_type) and values.dtype.kind == "f":
                values = np.nan_to_num(values).astype(np.int64)
            extra[field.name] = pa.array(values, type=arrow_type, mask=mask)
    for name, arr in extra.items():
        if name in names:
            arrays[names.index(name)] = arr
        else:
            names.append(name)
            arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, names=names)
