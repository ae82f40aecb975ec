"""Configuration of exact and near (MinHash-LSH) deduplication."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Settings that choose only how Spark runs dedup (which plan, its memory budgets, the connected-components rounds
# and their checkpoints), never what it decides: every plan gives the same rows (tests/spark/test_dedup_spark.py),
# and too few rounds fail the run rather than decide otherwise. Curate's stage params and the config's params
# hash leave them out, so that tuning one rebuilds nothing (docs/snapshots.md).
EXECUTION_KEYS = frozenset({"driver_max_bytes", "single_task_max_bytes", "driver_components_max_edges",
                            "max_iterations", "checkpoint_every"})


class DedupConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exact: bool = True
    near: bool = True
    threshold: float = Field(default=0.8, gt=0.0, lt=1.0, description="Jaccard similarity of near duplicates")
    num_perm: int = Field(default=128, gt=0)
    bands: int | None = Field(default=None, gt=0, description="default: chosen from threshold and weights")
    rows: int | None = Field(default=None, gt=0)
    # Candidates are verified by signature Jaccard, so false positives are cheap and false negatives are lost
    # recall: the defaults give 16 bands x 8 rows at 0.8 (P(candidate | J=0.8) = 0.95, see dedup/lsh.py).
    false_positive_weight: float = Field(default=0.05, ge=0.0)
    false_negative_weight: float = Field(default=0.95, ge=0.0)
    ngram: int = Field(default=5, gt=0, description="shingle size in words (or characters)")
    shingle: Literal["word", "char"] = "word"
    seed: int = 42
    # benchmarks/dedup_quality.py: with 128 permutations no signature floor gives both >= 0.98 recall and
    # >= 0.97 of removals truly >= 0.8 (the estimate's standard error, 0.035 at J=0.8, is wider than the
    # margin); exact Jaccard on the candidate pairs does, at the cost of shingling the clustered documents.
    verify: Literal["shingles", "signature", "none"] = Field(
        default="shingles",
        description="evidence for a removal: 'shingles' (exact Jaccard of the shingle sets >= threshold, "
        "computed for the candidate pairs examined only), 'signature' (MinHash estimate >= threshold - "
        "tolerance), 'none' (as 'signature', and candidate edges are not filtered at verify_threshold). "
        "true/false mean 'signature'/'none'. Candidate edges are always filtered by signature Jaccard >= "
        "verify_threshold unless 'none'",
    )
    tolerance: float = Field(
        default=0.02, ge=0.0, lt=1.0,
        description="verify 'signature'/'none': a near duplicate is removed only when its estimated Jaccard to "
        "the kept document is >= threshold - tolerance. The estimate's standard error is sqrt(J(1-J)/num_perm) "
        "= 0.035 at J=0.8 with 128 permutations; 0.02 (0.56 of it) lets a true 0.8 pass 71% of the time and "
        "a true 0.75 11%. Not applied to exact (shingles) similarities",
    )
    max_cluster: int = Field(
        default=1000, gt=1,
        description="components of candidate edges larger than this are reported (log and counts); they are "
        "resolved member by member like any other, never removed wholesale",
    )
    verify_threshold: float | None = Field(
        default=None, gt=0.0, le=1.0, description="default: threshold - 0.1 (LSH's S-curve is strict at threshold)"
    )
    max_iterations: int = Field(default=40, gt=0, description="bound on distributed connected-components rounds")
    checkpoint_every: int = Field(default=2, gt=0, description="truncate the Spark plan every N rounds")
    driver_components_max_edges: int = Field(
        default=2_000_000, ge=0,
        description="Spark: a verified edge list up to this size is collected and its components found by "
        "union-find on the driver (about 100 bytes per edge), saving the distributed rounds' jobs and "
        "checkpoints; larger graphs, or 0, use the distributed rounds. Same result either way",
    )
    driver_max_bytes: int = Field(
        default=64 << 20, ge=0,
        description="Spark: the most the driver plan may hold. An input whose dedup columns (signature, band "
        "keys and 128 bytes per document, plus the texts it needs: see dedup.spark.driver_plan_bytes) fit is "
        "deduplicated on the driver by the local engine's code, with no job of its own when curate's persisted "
        "step is read there (a small input such as the sample). A fixed bound, so the driver's memory does not "
        "grow with the corpus; capped by single_task_max_bytes and spark.driver.maxResultSize; 0: never",
    )
    single_task_max_bytes: int = Field(
        default=512 << 20, ge=0,
        description="Spark: the most the one-task plan may hold (the executor task's budget, same estimate as "
        "driver_max_bytes, except that the candidates' texts the task reads itself are not counted). An input above "
        "driver_max_bytes that fits is deduplicated by the local engine's code inside ONE task on an executor: "
        "one job, no shuffle, no component rounds; larger inputs take the distributed plan. The task's Python "
        "worker needs about 11 times these bytes (measured at 0.5 GB, docs/dedup.md); 0: always the distributed "
        "plan. Incremental curate's small-batch plan uses it too, capped by spark.driver.maxResultSize. Same "
        "decisions either way",
    )
    incremental: bool | None = Field(
        default=None,
        description="curate only raw docs without a decision, deduplicated against earlier kept docs "
        "(clean_docs exact hashes and the dedup_index table); earlier decisions never change. Unset: "
        "incremental when raw_docs only grew since the last curate and the curate params are unchanged",
    )
    keep: list[str] = Field(
        default_factory=lambda: ["-quality_score", "-n_chars", "doc_id"],
        description="keep rule: sort keys, '-' for descending; first one wins",
    )

    @field_validator("verify", mode="before")
    @classmethod
    def _verify_bool(cls, value: object) -> object:
        if isinstance(value, bool):
            return "signature" if value else "none"
        return value

    def removal_floor(self) -> float:
        """The least similarity to the kept document that removes a near duplicate: threshold - tolerance for
        signature estimates, threshold for exact shingle Jaccard."""
        return self.threshold if self.verify == "shingles" else self.threshold - self.tolerance

    @property
    def verify_edges(self) -> bool:
        """Whether candidate edges are filtered by signature Jaccard >= resolved_verify_threshold()."""
        return self.verify != "none"

    def resolved_verify_threshold(self) -> float:
        """The signature-Jaccard floor candidate edges must reach when `verify` is on."""
        return self.verify_threshold if self.verify_threshold is not None else max(self.threshold - 0.1, 0.05)
