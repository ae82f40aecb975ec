"""Configuration of ingest sources: local folders, S3 prefixes and Kafka topics."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="label used in metrics; defaults to the path/uri/topics")
    id_field: str = "id"
    text_field: str = "text"


class LocalSource(_Source):
    """A local folder (or file) of JSONL, JSONL.gz, JSONL.zst or Parquet objects."""

    type: Literal["local"] = "local"
    path: str
    glob: str = "**/*"
    format: Literal["auto", "jsonl", "parquet", "text"] = "auto"


class S3Source(_Source):
    """An S3 prefix, with optional glob, read through pyarrow/fsspec in Spark tasks."""

    type: Literal["s3"] = "s3"
    uri: str
    glob: str = "**/*"
    format: Literal["auto", "jsonl", "parquet", "text"] = "auto"
    endpoint: str | None = None
    region: str | None = None
    anonymous: bool = False


class KafkaSource(_Source):
    """Kafka topics, read by offset range per partition (kafka-python)."""

    type: Literal["kafka"] = "kafka"
    bootstrap: str
    topics: list[str] = Field(default_factory=list)
    topic_pattern: str | None = None
    value_format: Literal["json", "text"] = "json"
    starting_offsets: Literal["earliest", "latest"] = "earliest"
    max_records: int | None = None
    max_bytes: int | None = None
    client: dict[str, str | int | bool] = Field(
        default_factory=dict, description="extra kafka-python settings (SASL/SSL); never logged or recorded"
    )


SourceConfig = Annotated[LocalSource | S3Source | KafkaSource, Field(discriminator="type")]


class IngestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_record_bytes: int = Field(default=8 * 1024 * 1024, gt=0, description="larger records are quarantined")
    quarantine_raw_bytes: int = Field(default=4096, ge=0, description="raw bytes kept per quarantine row")
    parallelism: int | None = Field(default=None, description="Spark tasks; default: one per work unit")
