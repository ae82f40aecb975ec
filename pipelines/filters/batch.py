"""`curate_batch`: normalization, the configured filters in order, reasons and signal columns for one batch.

Called inside a Spark `mapInArrow` task by the curate stage, and directly by tests and benchmarks. The
batch's text is decoded and split into words once; every count-based family reads the same counts. A
filter that edits text (`c4_quality`, `pii`) makes later filters see the edited text, which is then
decoded and split again. The runner knows no filter by name: each is a `base.Filter` (docs/extending.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pyarrow as pa

from pipelines.filters import stats as S
from pipelines.filters.base import BatchContext, Filter
from pipelines.filters.config import NormalizeConfig
from pipelines.filters.counts import TextCounts
from pipelines.filters.normalize import normalize_text
from pipelines.filters.rules import quality_score, ratio
from schemas.base import TableDef, make_schema
from schemas.signals import SIGNAL_FIELDS

__all__ = ["BASE_SIGNALS", "TextCounts", "curate_batch"]

log = logging.getLogger(__name__)

# signal columns filled for every document whatever the filters, from the final text's counts
BASE_SIGNALS = ("n_chars", "n_words", "n_lines", "mean_word_length", "alpha_words_ratio", "quality_score")


@lru_cache(maxsize=1)
def _signal_schema() -> pa.Schema:
    """Arrow fields of the signal columns, exactly as the clean_docs/doc_decisions data files have them."""
    return TableDef(name="signals", schema=make_schema(*SIGNAL_FIELDS)).arrow_schema


def curate_batch(
    batch: pa.RecordBatch, *, normalize: NormalizeConfig, filters: Sequence[Filter]
) -> pa.RecordBatch:
    """Normalize `batch.text`, run `filters` in order and add `reason` and the signal columns.

    Output: the same rows in the same order, `text` replaced by the normalized (and, for c4_quality/pii,
    edited) text, `reason` (null = kept, else the first failing filter's reason code) and one column per
    `schemas.signals.SIGNAL_FIELDS` with its exact Arrow type (null where not computed). A filter only
    judges documents that earlier filters kept, and fills only the signals it declares. Null text is
    treated as empty text. Never raises on document content; raises ValueError when the batch has no
    string `text` column or a filter returns reasons that are not one per row.
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
        result = spec.apply(BatchContext(batch=batch, counts=tc, alive=alive))
        got = np.asarray(result.reasons, dtype=object)
        if got.shape != (n,):
            raise ValueError(f"filter {spec.name!r} returned {got.shape} reasons for {n} rows")
        sig.update((k, v) for k, v in result.signals.items() if k in spec.signals)
        if result.text is not None:
            tc = TextCounts(result.text)
        fail = alive & (got != "")
        reasons[fail] = got[fail]

    st = tc.stats()
    sig["n_chars"] = st[:, S.N_CHARS]
    sig["n_words"] = st[:, S.N_NONSYMBOL]
    sig["n_lines"] = st[:, S.N_LINES]
    sig["mean_word_length"] = ratio(st[:, S.NONSYMBOL_CHARS], st[:, S.N_NONSYMBOL])
    sig["alpha_words_ratio"] = ratio(st[:, S.N_ALPHA_WORDS], st[:, S.N_WORDS])
    sig["quality_score"] = quality_score(st)
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
