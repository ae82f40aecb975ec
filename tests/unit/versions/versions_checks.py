"""Checks shared by the versions tests: the tags a version left on the tables, and pinned files that match
their manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipelines import lake
from pipelines.config import Config


def _tags(cfg: Config, name: str) -> dict[str, int]:
    catalog = lake.open_catalog(cfg.lake)
    out = {}
    for tname in ("raw_docs", "quarantine", "clean_docs", "doc_decisions", "tokens", "shards"):
        table = lake.load_table(catalog, cfg.lake.namespace, tname)
        if table is not None and name in table.refs():
            out[tname] = table.refs()[name].snapshot_id
    return out


def _pinned_files_match_manifest(info) -> None:
    path = Path(info.manifest_uri.removeprefix("file://"))
    folder = path.parent
    manifest = json.loads(path.read_bytes())
    assert hashlib.sha256(path.read_bytes()).hexdigest() == info.manifest_sha256
    for e in manifest["shards"]:
        assert hashlib.sha256((folder / e["path"]).read_bytes()).hexdigest() == e["sha256"]
