"""Configuration of exact and near (MinHash-LSH) deduplication."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DedupConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exact: bool = True
    near: bool = True
    threshold: float = Field(default=0.8, gt=0.0, lt=1.0, description="Jaccard similarity of near duplicates")
    num_perm: int = Field(default=128, gt=0)
    bands: int | None = Field(default=None, description="default: chosen from threshold and weights")
    rows: int | None = None
    false_positive_weight: float = 0.5
    false_negative_weight: float = 0.5
    ngram: int = Field(default=5, gt=0, description="shingle size in words (or characters)")
    shingle: Literal["word", "char"] = "word"
    seed: int = 42
    verify: bool = True
    keep: list[str] = Field(
        default_factory=lambda: ["-quality_score", "-n_chars", "doc_id"],
        description="keep rule: sort keys, '-' for descending; first one wins",
    )
