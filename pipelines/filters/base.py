"""The filter contract: what a filter declares and what it gets and returns for one batch.

A filter is one pydantic model: its fields are its `curate.filters` parameters, its `name` field (a
`Literal` with the same default) is the key users write, `signals` names the `schemas.signals` columns it
fills, and `apply` judges one batch. `pipelines.filters.registry` turns the registered filters into the
config union; `pipelines.filters.batch.curate_batch` runs them in order. docs/extending.md walks through
adding one.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from pipelines.filters.counts import TextCounts


@dataclass
class BatchContext:
    """What a filter sees of one batch.

    `counts` holds the current text (normalized, and edited by earlier filters) and its shared counts;
    `alive` is True for the documents no earlier filter dropped: reasons count only there, and a filter
    may skip work elsewhere. `batch` is the input batch (its other columns, such as `doc_id`).
    """

    batch: pa.RecordBatch
    counts: TextCounts
    alive: np.ndarray

    @property
    def num_rows(self) -> int:
        return self.batch.num_rows

    @property
    def text(self) -> pa.Array:
        """The current text, a large_string array with no nulls."""
        return self.counts.text

    def doc_ids(self) -> pa.Array:
        """The batch's `doc_id` column, or row numbers as strings when it has none."""
        if "doc_id" in self.batch.schema.names:
            return self.batch.column("doc_id")
        return pa.array(range(self.num_rows)).cast(pa.string())


@dataclass(frozen=True)
class FilterResult:
    """A filter's verdict on one batch.

    `reasons`: object array with one entry per row, the reason code of a document the filter drops and ""
    for one it keeps (entries outside `ctx.alive` are ignored). `signals`: arrays of one value per row under
    the filter's declared signal names (others are ignored; NaN becomes null). `text`: the batch's whole
    text after the filter when it edits text (rows it must not change copied from `ctx.text`), else None.
    """

    reasons: np.ndarray
    signals: Mapping[str, np.ndarray] = field(default_factory=dict)
    text: pa.Array | None = None


@runtime_checkable
class Filter(Protocol):
    """What the curate runner relies on: a `name`, the signal columns it fills, and `apply`."""

    name: str
    signals: ClassVar[tuple[str, ...]]

    def apply(self, ctx: BatchContext) -> FilterResult:
        """Judge the documents of one batch (never raises on document content)."""
        ...


class BaseFilter(BaseModel):
    """Base of the built-in filters: a config model (unknown keys are errors) with the `Filter` methods.

    A subclass sets `name: Literal["<name>"] = "<name>"`, its parameters as fields, `signals`, and `apply`.
    """

    model_config = ConfigDict(extra="forbid")

    signals: ClassVar[tuple[str, ...]] = ()
    name: str

    @abstractmethod
    def apply(self, ctx: BatchContext) -> FilterResult:
        """Judge the documents of one batch (never raises on document content)."""
