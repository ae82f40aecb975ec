"""Quality signals stored as columns of clean_docs and doc_decisions, so users can re-filter with SQL.

Field ids 100-199 are reserved for signals; a new signal takes the next free id and is never renumbered.
"""

from __future__ import annotations

from pyiceberg.types import DoubleType, IntegerType, LongType, NestedField, StringType

SIGNAL_FIELDS: tuple[NestedField, ...] = (
    NestedField(100, "n_chars", LongType(), required=False, doc="characters after normalization"),
    NestedField(101, "n_words", LongType(), required=False, doc="whitespace/punctuation-split words"),
    NestedField(102, "n_lines", IntegerType(), required=False),
    NestedField(103, "mean_word_length", DoubleType(), required=False),
    NestedField(104, "language", StringType(), required=False, doc="ISO 639 code from fastText lid.176"),
    NestedField(105, "language_score", DoubleType(), required=False),
)

SIGNAL_NAMES: tuple[str, ...] = tuple(f.name for f in SIGNAL_FIELDS)
