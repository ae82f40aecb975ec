"""The one tokenmill config: a YAML file validated by pydantic models, with `--set dotted.key=VALUE` overrides.

Sub-models live next to the code that uses them; this module composes them and resolves the
embedded defaults (SQLite catalog, local warehouse and shard folder under `lake.root`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dedup.config import EXECUTION_KEYS, DedupConfig
from pipelines.errors import ConfigError
from pipelines.filters.config import FilterSpec, LengthFilter, NormalizeConfig
from pipelines.ops.gc_config import GcConfig
from pipelines.ops.monitor_config import MonitorConfig
from pipelines.secrets import check_no_literal_secrets, resolve_settings
from pipelines.sources.config import IngestConfig, SourceConfig
from pipelines.stages.follow_config import FollowConfig
from pipelines.stages.tokenize.config import TokenizeConfig
from pipelines.storage import S3Options
from sharding.write.config import ShardConfig


class LakeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str = "lake"
    namespace: str = "tokenmill"
    catalog_name: str = "tokenmill"
    catalog: dict[str, str] = Field(
        default_factory=dict,
        description="pyiceberg catalog properties (type: rest|glue|hive|sql, uri, ...); "
        "default: SqlCatalog on <root>/catalog.db",
    )
    warehouse: str | None = Field(default=None, description="default: <root>/warehouse")
    scratch: str | None = Field(
        default=None, description="URI (local path, file:// or s3://) for a run's temporary data: curate's "
        "intermediate files and dedup checkpoints; each run's folder is removed when it ends; "
        "default: <warehouse>/_scratch")
    metrics_dir: str | None = Field(default=None, description="per-stage metrics JSON; default: <root>/metrics")
    s3: S3Options = Field(
        default_factory=S3Options, description="how to reach an s3:// warehouse and scratch (endpoint, region); "
        "unset fields come from AWS_ENDPOINT_URL(_S3), AWS_REGION and the AWS credential chain")
    read_version: str | None = Field(
        default=None, description="stages read their input tables at this dataset version (`tokenmill version`)")

    def catalog_properties(self) -> dict[str, str]:
        """Properties for `pyiceberg.catalog.load_catalog`, with the embedded SQLite default filled in."""
        root = Path(self.root).absolute()
        props = dict(self.catalog)
        if props.get("type", "sql") == "sql" and "uri" not in props:
            # settings without a uri (a warehouse, S3 properties) keep the embedded SQLite catalog
            props = {"type": "sql", "uri": f"sqlite:///{root / 'catalog.db'}", **props}
        props.setdefault("warehouse", self.warehouse_uri())
        return resolve_settings({**self.s3_catalog_properties(), **props}, "lake.catalog")

    @model_validator(mode="after")
    def _no_literal_secrets(self) -> LakeConfig:
        check_no_literal_secrets(self.catalog, "catalog")
        return self

    def s3_catalog_properties(self) -> dict[str, str]:
        """pyiceberg's S3 properties for `s3` (pyiceberg reads neither AWS_ENDPOINT_URL nor AWS_REGION);
        keys only when configured here, else pyiceberg's pyarrow S3 client takes the AWS credential chain."""
        r = self.s3.resolved()
        props = {"s3.region": r.region or "us-east-1"}
        if r.endpoint:
            props["s3.endpoint"] = r.endpoint
        if self.s3.access_key and self.s3.secret_key:
            props.update({"s3.access-key-id": self.s3.access_key, "s3.secret-access-key": self.s3.secret_key})
            if self.s3.session_token:
                props["s3.session-token"] = self.s3.session_token
        return props

    def task_s3(self) -> S3Options:
        """The S3 settings handed to Spark tasks: endpoint and region resolved here on the driver (executors
        need no AWS_ENDPOINT_URL); keys only when configured, else each executor's own credential chain."""
        r = self.s3.resolved()
        return self.s3.model_copy(update={"endpoint": r.endpoint, "region": r.region})

    def warehouse_uri(self) -> str:
        if self.warehouse:
            return self.warehouse if "://" in self.warehouse else f"file://{Path(self.warehouse).absolute()}"
        return f"file://{Path(self.root).absolute() / 'warehouse'}"

    def scratch_uri(self) -> str:
        if self.scratch:
            return self.scratch if "://" in self.scratch else f"file://{Path(self.scratch).absolute()}"
        return self.warehouse_uri().rstrip("/") + "/_scratch"


class SparkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    master: str = "local[*]"
    app_name: str = "tokenmill"
    driver_memory: str = Field(
        default="4g", pattern=r"^[1-9][0-9]*[kmgt]?$",
        description="spark.driver.memory of the CLI's own session (a JVM size: 4g, 2048m); a `spark.driver.memory` "
        "key in `conf` wins, and under spark-submit its --driver-memory or spark-defaults.conf decide (the driver "
        "JVM is already running when the job starts)")
    conf: dict[str, str] = Field(default_factory=dict)


class CurateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    normalize: NormalizeConfig = Field(default_factory=NormalizeConfig)
    filters: list[FilterSpec] = Field(default_factory=lambda: list[FilterSpec]([LengthFilter()]))
    dedup: DedupConfig = Field(default_factory=DedupConfig)

    def decision_params(self, *, mode: bool = True) -> dict[str, Any]:
        """This config as JSON-ready data less what changes no decision: dedup's execution settings
        (`dedup.config.EXECUTION_KEYS`), and with `mode` false also the choice of incremental mode."""
        return self.model_dump(mode="json", exclude={"dedup": {*EXECUTION_KEYS, *(() if mode else ("incremental",))}})


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lake: LakeConfig = Field(default_factory=LakeConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    curate: CurateConfig = Field(default_factory=CurateConfig)
    tokenize: TokenizeConfig = Field(default_factory=TokenizeConfig)
    shard: ShardConfig = Field(default_factory=ShardConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    follow: FollowConfig = Field(default_factory=FollowConfig)
    gc: GcConfig = Field(default_factory=GcConfig)

    def shards_uri(self) -> str:
        """Where shards and the manifest go: `shard.output`, else `<lake.root>/shards`."""
        if self.shard.output:
            return self.shard.output
        return str(Path(self.lake.root).absolute() / "shards")

    def params_hash(self) -> str:
        """sha256 of the canonical JSON of this config (secrets in Kafka client settings excluded, and what
        changes no output: the `follow` schedule and the settings that only choose how dedup runs,
        `dedup.config.EXECUTION_KEYS`)."""
        data = self.model_dump(mode="json", exclude={"follow"})
        data["curate"] = self.curate.decision_params()
        for src in data.get("sources", []):
            src.pop("client", None)
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one `dotted.key=VALUE` override in place; VALUE is parsed as YAML.

    >>> d = {"shard": {"target_bytes": 1}}
    >>> apply_override(d, "shard.target_bytes=4096"); d
    {'shard': {'target_bytes': 4096}}
    >>> apply_override(d, "sources.0.path=x")
    Traceback (most recent call last):
    ...
    pipelines.errors.ConfigError: --set sources.0.path: 'sources' is not set
    """
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected dotted.key=VALUE")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {key!r}: empty key segment")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"--set {key.strip()}: value {raw!r} is not valid YAML ({mark})") from None
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"--set {key}: no list item {part!r}")
            node = node[int(part)]
        else:
            if part not in node:
                if i == 0 and part == "sources":
                    raise ConfigError(f"--set {key}: 'sources' is not set")
                node[part] = {}
            node = node[part]
            if node is None:
                raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])!r} is not set")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"--set {key}: no list item {last!r}")
        node[int(last)] = value
    else:
        node[last] = value


def _format_validation_error(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"unknown config key {loc!r}"
    return f"bad config value at {loc!r}: {first['msg']}"


def load_config(path: str | Path | None = "params.yaml", overrides: list[str] | None = None) -> Config:
    """Load and validate the YAML config at `path` (missing default file: all defaults), then apply overrides.

    Relative local paths (from the file or `--set`) are made absolute against the config file's folder (the
    working directory without a file), once, here: no task ever sees a relative path.
    Raises ConfigError with one line naming the bad key or value.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if p.exists():
            try:
                loaded = yaml.safe_load(p.read_text())
            except yaml.YAMLError as exc:
                raise ConfigError(f"{p}: not valid YAML ({exc.__class__.__name__})") from exc
            if loaded is None:
                raise ConfigError(f"{p} is empty; write `{{}}` in it to run with every default")
            if not isinstance(loaded, dict):
                raise ConfigError(f"{p}: top level must be a mapping")
            data = loaded
        elif str(path) != "params.yaml":
            raise ConfigError(f"config file not found: {p}")
    for assignment in overrides or []:
        apply_override(data, assignment)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc)) from None
    from pipelines.config_paths import resolve_paths

    resolve_paths(cfg, Path(path).absolute().parent if path is not None and Path(path).exists() else Path.cwd())
    check_paths(cfg)
    return cfg


def check_paths(cfg: Config) -> None:
    """Local paths that must be folders (or not exist yet) are checked before any stage starts Spark.

    Raises ConfigError naming the key and the path.
    """
    folders = {"lake.root": cfg.lake.root, "lake.warehouse": cfg.lake.warehouse,
               "lake.metrics_dir": cfg.lake.metrics_dir, "shard.output": cfg.shard.output}
    for key, value in folders.items():
        if not value or "://" in value and not value.startswith("file://"):
            continue
        path = Path(value.removeprefix("file://"))
        for parent in (path, *path.parents):
            if parent.exists():
                if not parent.is_dir():
                    raise ConfigError(f"{key}: {parent} is a file, not a folder")
                break
