"""Settings of `tokenmill run --follow` (the `follow:` section of params.yaml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FollowConfig(BaseModel):
    """When a continuous run starts its next cycle (ingest, curate, tokenize, shard, publish).

    A cycle starts `interval` seconds after the previous one started, or earlier once `min_records`
    records wait in the sources (Kafka records past the stored offsets plus new objects), checked every
    `poll` seconds. `max_cycles` stops the run after that many cycles (none: run until SIGTERM).
    """

    model_config = ConfigDict(extra="forbid")

    interval: float = Field(default=60.0, gt=0, description="seconds between cycle starts")
    min_records: int = Field(default=0, ge=0, description="start a cycle early once this many wait (0: never)")
    poll: float = Field(default=5.0, gt=0, description="seconds between checks of the waiting records")
    max_cycles: int | None = Field(default=None, ge=1, description="stop after this many cycles")
