"""Quality signals stored as columns of clean_docs and doc_decisions, so users can re-filter with SQL.

Field ids 100-199 are reserved for signals; a new signal takes the next free id and is never renumbered.
A signal is null where the filter that computes it was not in `curate.filters` (language, repetition,
FineWeb, C4, PII columns); the first group and `quality_score` are always filled. Words are tokens that
are not made only of punctuation and symbols; character counts are Unicode code points.
"""

from __future__ import annotations

from pyiceberg.types import BooleanType, DoubleType, IntegerType, LongType, NestedField, StringType

SIGNAL_FIELDS: tuple[NestedField, ...] = (
    NestedField(
        100, "n_chars", LongType(), required=False, doc="characters of the final (normalized, edited) text"
    ),
    NestedField(
        101, "n_words", LongType(), required=False, doc="words that are not only punctuation/symbols"
    ),
    NestedField(102, "n_lines", IntegerType(), required=False),
    NestedField(103, "mean_word_length", DoubleType(), required=False),
    NestedField(104, "language", StringType(), required=False, doc="ISO 639 code from fastText lid.176"),
    NestedField(105, "language_score", DoubleType(), required=False),
    NestedField(
        106, "quality_score", DoubleType(), required=False, doc="heuristic in [0,1], higher is better"
    ),
    NestedField(
        107, "alpha_words_ratio", DoubleType(), required=False, doc="tokens with a letter / all tokens"
    ),
    NestedField(108, "hash_word_ratio", DoubleType(), required=False, doc="'#' per token"),
    NestedField(109, "ellipsis_word_ratio", DoubleType(), required=False, doc="'...' and '…' per token"),
    NestedField(110, "bullet_lines_ratio", DoubleType(), required=False),
    NestedField(111, "ellipsis_lines_ratio", DoubleType(), required=False),
    NestedField(112, "n_stop_words", IntegerType(), required=False, doc="distinct Gopher stop words present"),
    NestedField(113, "dup_para_frac", DoubleType(), required=False),
    NestedField(114, "dup_para_char_frac", DoubleType(), required=False),
    NestedField(115, "dup_line_frac", DoubleType(), required=False),
    NestedField(116, "dup_line_char_frac", DoubleType(), required=False),
    NestedField(117, "top_2_gram_char_frac", DoubleType(), required=False),
    NestedField(118, "top_3_gram_char_frac", DoubleType(), required=False),
    NestedField(119, "top_4_gram_char_frac", DoubleType(), required=False),
    NestedField(120, "dup_5_gram_char_frac", DoubleType(), required=False),
    NestedField(121, "dup_6_gram_char_frac", DoubleType(), required=False),
    NestedField(122, "dup_7_gram_char_frac", DoubleType(), required=False),
    NestedField(123, "dup_8_gram_char_frac", DoubleType(), required=False),
    NestedField(124, "dup_9_gram_char_frac", DoubleType(), required=False),
    NestedField(125, "dup_10_gram_char_frac", DoubleType(), required=False),
    NestedField(
        126, "line_punct_ratio", DoubleType(), required=False, doc="non-blank lines ending a sentence"
    ),
    NestedField(127, "short_line_ratio", DoubleType(), required=False),
    NestedField(
        128, "char_dup_ratio", DoubleType(), required=False, doc="duplicated line chars / non-newline chars"
    ),
    NestedField(129, "newline_word_ratio", DoubleType(), required=False, doc="newlines per token"),
    NestedField(130, "c4_sentences", IntegerType(), required=False, doc="sentences in lines C4 kept"),
    NestedField(131, "has_bad_words", BooleanType(), required=False),
    NestedField(132, "pii_emails", IntegerType(), required=False),
    NestedField(133, "pii_ips", IntegerType(), required=False),
    NestedField(134, "pii_phones", IntegerType(), required=False),
)

SIGNAL_NAMES: tuple[str, ...] = tuple(f.name for f in SIGNAL_FIELDS)
