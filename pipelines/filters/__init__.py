"""Normalization, quality filters, language ID and PII for the curate stage.

`curate_batch(batch, normalize=..., filters=...)` is the whole interface the curate stage calls from a
Spark `mapInArrow` task; the kernels it composes live in `words`, `stats`, `c4`, `rules` and `textual`.
"""

from pipelines.filters.batch import curate_batch

__all__ = ["curate_batch"]
