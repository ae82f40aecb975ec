"""Normalization, quality filters, language ID and PII for the curate stage.

`curate_batch(batch, normalize=..., filters=...)` is the whole interface the curate stage calls from a
Spark `mapInArrow` task. Each filter is one module, `pipelines/filters/<name>.py`, holding its config
model, its `apply` and its kernels; `registry` lists them and builds the `curate.filters` config union
(docs/extending.md shows how to add one).
"""

from pipelines.filters.base import BaseFilter, BatchContext, Filter, FilterResult
from pipelines.filters.batch import curate_batch
from pipelines.filters.registry import FilterSpec, register, registered

__all__ = [
    "BaseFilter",
    "BatchContext",
    "Filter",
    "FilterResult",
    "FilterSpec",
    "curate_batch",
    "register",
    "registered",
]
