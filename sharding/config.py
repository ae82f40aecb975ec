"""Configuration of the shard stage."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ShardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_bytes: int = Field(default=134_217_728, ge=4096, description="shard size limit, tar headers included")
    output: str | None = Field(default=None, description="local dir or s3:// URI; default <lake.root>/shards")
    endpoint: str | None = Field(default=None, description="S3 endpoint override for an s3:// output")
    seed: int = Field(default=0, description="order of documents within the dataset")
