"""Configuration of the shard stage."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipelines.storage import S3Options


class ShardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_bytes: int = Field(
        default=134_217_728, ge=4096, le=1 << 36, description="shard size limit, tar headers included (4 KiB..64 GiB)"
    )
    output: str | None = Field(default=None, description="local dir or s3:// URI; default <lake.root>/shards")
    endpoint: str | None = Field(default=None, description="S3 endpoint override for an s3:// output")
    seed: int = Field(default=0, ge=0, lt=1 << 64, description="order of documents within the dataset")
    fill: float = Field(
        default=0.99, gt=0.5, le=1.0, description="a shard closes once it holds this fraction of target_bytes"
    )
    lookahead: int = Field(
        default=1024,
        ge=1,
        description="documents that may wait for the next shard while smaller ones fill a gap",
    )
    group_shards: int = Field(
        default=64,
        ge=1,
        description="shards' worth of bytes per bucket group packed on one executor; each group ends in a "
        "partly filled tail, so a run has about total/(group_shards*target_bytes) + 1 tails",
    )
    write_tasks: int | None = Field(
        default=None,
        ge=1,
        description="Spark tasks writing shards; default: one per core, at most one per shard",
    )

    def s3_options(self) -> S3Options:
        """How to reach an s3:// output: `endpoint`, the rest from the AWS environment (pipelines.storage)."""
        return S3Options(endpoint=self.endpoint)
