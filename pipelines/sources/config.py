"""Configuration of ingest sources: local folders, S3 prefixes and Kafka topics.

Object sources (local, S3) take a base path/URI plus an optional glob relative to it. With no glob, only
data files are taken, by suffix (see `pipelines.sources.formats.DATA_SUFFIXES`): README, LICENSE, `.txt`,
hidden (`.x`) and marker (`_SUCCESS`) files are left alone. A glob in the URI itself
(`s3://bucket/crawl/*/part-*.jsonl.gz`) works as well.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.secrets import check_no_literal_secrets
from pipelines.storage import S3Options

ObjectFormat = Literal["auto", "jsonl", "parquet", "text"]


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="label used in metrics; defaults to the path/uri/topics")
    id_field: str = Field(default="id", description="record field used as doc_id (cast to string) when present")
    text_field: str = "text"


class LocalSource(_Source):
    """A local folder (or file) of JSONL (.jsonl/.json/.ndjson), JSONL.gz, JSONL.zst, Parquet or text objects.

    `format="auto"` picks by suffix; a `.txt` object (or any object with `format="text"`) is one document.
    """

    type: Literal["local"] = "local"
    path: str
    glob: str | None = Field(default=None, description="relative glob (`**` spans folders); default: data files")
    format: ObjectFormat = "auto"
    follow_symlinks: bool = Field(
        default=True, description="enter symlinked folders (each real folder once: loops are cut with a warning)")

    def label(self) -> str:
        return self.name or self.path


class S3Source(_Source):
    """An S3 prefix (glob allowed), listed on the driver with its ETags and read in Spark tasks via pyarrow.

    Credentials follow the standard AWS chain (environment, profile, instance role); `endpoint` points at any
    S3-compatible server.
    """

    type: Literal["s3"] = "s3"
    uri: str
    glob: str | None = Field(default=None, description="relative glob (`**` spans folders); default: data files")
    format: ObjectFormat = "auto"
    endpoint: str | None = None
    region: str | None = None
    anonymous: bool = False

    @model_validator(mode="after")
    def _check_uri(self) -> S3Source:
        if not (self.uri.startswith("s3://") or self.uri.startswith("s3a://")):
            raise ValueError(f"S3 source uri must start with s3:// (got {self.uri!r})")
        return self

    def label(self) -> str:
        return self.name or self.uri

    def s3_options(self) -> S3Options:
        """How this source reaches S3 (unset fields come from the AWS environment, see pipelines.storage)."""
        return S3Options(endpoint=self.endpoint, region=self.region, anonymous=self.anonymous)


class KafkaSource(_Source):
    """Kafka topics, read by offset range per partition (kafka-python).

    The first run starts at `starting_offsets`; later runs start where the last committed raw_docs snapshot
    left off. `max_records`/`max_bytes` bound one run (bytes are split evenly over the partitions read).
    `client` settings (SASL/SSL) go to kafka-python and never appear in logs or snapshot summaries; secrets
    among them must be references (`sasl_plain_password: ${env:KAFKA_PASSWORD}`, see `pipelines.secrets`).
    """

    type: Literal["kafka"] = "kafka"
    bootstrap: str
    topics: list[str] = Field(default_factory=list)
    topic_pattern: str | None = Field(default=None, description="regex, matched in full against topic names")
    value_format: Literal["json", "text"] = "json"
    starting_offsets: Literal["earliest", "latest"] = "earliest"
    reset: Literal["fail", "earliest"] = Field(
        default="fail", description="a stored offset outside a partition's range (retention, a recreated or "
        "truncated topic): stop with one line naming it, or go on from the partition's earliest offset")
    max_records: int | None = Field(default=None, gt=0)
    max_bytes: int | None = Field(default=None, gt=0)
    records_per_task: int = Field(default=200_000, gt=0, description="offset ranges are split into tasks this big")
    poll_timeout_ms: int = Field(default=10_000, gt=0, description="give up on a range after this long idle")
    client: dict[str, str | int | bool] = Field(
        default_factory=dict, description="extra kafka-python settings (SASL/SSL); never logged or recorded"
    )

    @model_validator(mode="after")
    def _check_topics(self) -> KafkaSource:
        if not self.topics and not self.topic_pattern:
            raise ValueError("kafka source needs topics or topic_pattern")
        check_no_literal_secrets(self.client, "client")
        return self

    def label(self) -> str:
        return self.name or f"{self.bootstrap}/{','.join(self.topics) or self.topic_pattern}"


SourceConfig = Annotated[LocalSource | S3Source | KafkaSource, Field(discriminator="type")]


class IngestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_record_bytes: int = Field(default=8 * 1024 * 1024, gt=0, description="larger records are quarantined")
    max_expansion: int = Field(
        default=1000, gt=0, description="a compressed object may decompress to this many times its stored size "
        "(and at least 64 MiB); the rest of it is quarantined as expansion_limit")
    quarantine_raw_bytes: int = Field(default=4096, ge=0, description="raw bytes kept per quarantine row")
    parallelism: int | None = Field(
        default=None, gt=0, description="Spark tasks; default: one per work unit, at most 8 per core (units packed by size)"
    )
    file_bytes: int = Field(default=128 * 1024 * 1024, gt=0, description="a task rolls its data file at this much Arrow data")
