"""Retention of shard objects and Iceberg snapshots (config key `gc`, used by `tokenmill gc`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# raw_docs and quarantine keep their history: the audit sums records read over the ingest commits
EXPIRE_TABLES = ("clean_docs", "doc_decisions", "dedup_index", "tokens", "shards")


class GcConfig(BaseModel):
    """What `tokenmill gc` keeps besides the current snapshot and every dataset version."""

    model_config = ConfigDict(extra="forbid")

    keep_snapshots: int = Field(
        default=5, ge=1,
        description="keep the shards of the last N published manifests and the last N snapshots of each table")
    min_age_seconds: int = Field(
        default=3600, ge=0,
        description="never remove an object younger than this: a running shard run's not yet published shards")
    expire_tables: list[str] = Field(
        default_factory=lambda: list(EXPIRE_TABLES),
        description="tables whose older snapshots are expired through pyiceberg (metadata only)")
