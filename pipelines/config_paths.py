"""Resolving a config's paths once, on the driver, and masking passwords in URIs before they are shown.

Executors have their own working directories and no view of the driver's disk, so no relative path may reach a
task: `resolve_paths` makes every local path of the config absolute against the config file's folder (the
working directory when there is no file) as the config is loaded. URIs (`s3://...`) are left as they are.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.config import Config

# scheme://user:password@host -> scheme://user:***@host (SQLAlchemy, REST, Kafka, S3-compatible URLs)
_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/:@\s]*:)(?P<secret>[^@\s/]*)(?=@)")
# catalog properties whose values are secrets (pyiceberg names: s3.secret-access-key, token, credential, ...)
_SECRET_KEY = re.compile(r"secret|password|token|credential|session", re.IGNORECASE)


def mask_uri(uri: str) -> str:
    """`uri` with the password of its `user:password@` part replaced by `***`; anything else unchanged.

    >>> mask_uri("postgresql+psycopg2://tm:s3cret@db:5432/cat")
    'postgresql+psycopg2://tm:***@db:5432/cat'
    >>> mask_uri("s3://bucket/key")
    's3://bucket/key'
    """
    return _PASSWORD.sub(lambda m: m.group("head") + "***", uri)


def masked_properties(props: dict[str, str]) -> dict[str, str]:
    """Catalog properties fit to print: passwords in URIs masked, secret-named values replaced by `***`."""
    return {k: "***" if _SECRET_KEY.search(k) else mask_uri(str(v)) for k, v in props.items()}


def _absolute(value: str | None, base: Path) -> str | None:
    if not value or "://" in value:
        return value
    p = Path(value).expanduser()
    return os.path.normpath(p if p.is_absolute() else base / p)


def _sqlite_absolute(uri: str | None, base: Path) -> str | None:
    # sqlite:///relative.db is relative to the working directory; sqlite:////abs.db is absolute
    if not uri or not uri.startswith("sqlite:///") or uri.startswith("sqlite:////"):
        return uri
    rest = uri.removeprefix("sqlite:///")
    return uri if rest.startswith(":memory:") or not rest else f"sqlite:///{os.path.normpath(base / rest)}"


def resolve_paths(cfg: Config, base: Path) -> None:
    """Make every local path of `cfg` absolute against `base` (in place): lake.root, warehouse, scratch,
    metrics_dir, a SQLite catalog URI, local source paths, the tokenizer, shard output and Prometheus file."""
    base = Path(os.path.abspath(base))
    lake = cfg.lake
    lake.root = _absolute(lake.root, base) or lake.root
    lake.warehouse = _absolute(lake.warehouse, base)
    lake.scratch = _absolute(lake.scratch, base)
    lake.metrics_dir = _absolute(lake.metrics_dir, base)
    if "uri" in lake.catalog:
        lake.catalog["uri"] = _sqlite_absolute(lake.catalog["uri"], base) or lake.catalog["uri"]
    for source in cfg.sources:
        if source.type == "local":
            source.path = _absolute(source.path, base) or source.path
    cfg.tokenize.tokenizer = _absolute(cfg.tokenize.tokenizer, base) or cfg.tokenize.tokenizer
    cfg.shard.output = _absolute(cfg.shard.output, base)
    cfg.monitor.prometheus_file = _absolute(cfg.monitor.prometheus_file, base)
