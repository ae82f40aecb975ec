"""The one table of what a loader batch can hold: every output field, its dtype, shape and meaning.

`FIELDS` (what ``TokenLoader(fields=...)`` accepts) and `OUTPUTS` (the int64 ``[rows, seq_len]`` arrays the
packing kernels write into pooled buffers, sharding.loader.buffers) are derived from `TABLE`; the TokenLoader
docstring and docs/loader.md describe the same rows (a unit test checks both name every field). Every batch
also holds ``step``, its global step number. Adding a field: docs/extending.md."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OutputField:
    """One output of a batch. ``packed``: an int64 ``[rows, seq_len]`` array written by the packing kernels
    into pooled buffers; otherwise built from them (``cu_seqlens``). ``extra``: keys that come with it."""

    name: str
    dtype: str
    shape: str
    packed: bool
    meaning: str
    extra: tuple[str, ...] = ()


TABLE: tuple[OutputField, ...] = (
    OutputField(
        "input_ids",
        "int64",
        "[batch_size, seq_len]",
        True,
        "a window of the token stream without its last token; documents each followed by EOD (always computed)",
    ),
    OutputField(
        "labels",
        "int64",
        "[batch_size, seq_len]",
        True,
        "the window shifted by one; ignore_index (-100) where the target starts another document",
    ),
    OutputField(
        "position_ids",
        "int64",
        "[batch_size, seq_len]",
        True,
        "0 at each row start and each document start, rising by one within a document",
    ),
    OutputField(
        "cu_seqlens",
        "int32",
        "[segments + 1]",
        False,
        "segment starts in the flattened [batch_size * seq_len] input plus the total (varlen attention)",
        extra=("max_seqlen",),
    ),
)

FIELDS: tuple[str, ...] = tuple(f.name for f in TABLE)
OUTPUTS: tuple[str, ...] = tuple(f.name for f in TABLE if f.packed)
