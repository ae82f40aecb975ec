"""The on-disk shard format, defined once: the tar layout and the per-shard index (`tar`), the manifest's
format string, token dtypes, shard names, building and canonical bytes (`manifest`), and the one manifest
model with its parser and reader (`model`). Imports numpy and the storage seam only (no torch, Spark or
pyiceberg): the shard writer, the loader, versions, audit and lineage all read and write through it."""

from sharding.format.manifest import (
    FORMAT,
    MANIFEST_NAME,
    TOKEN_DTYPES,
    build_manifest,
    index_name,
    manifest_bytes,
    shard_name,
)
from sharding.format.model import ShardManifest, manifest_location, parse_manifest, read_manifest
from sharding.format.tar import (
    INDEX_DTYPE,
    INDEX_FIELDS,
    Member,
    index_bytes,
    index_matrix,
    iter_members,
    read_index,
    sample_json,
)

__all__ = [
    "FORMAT",
    "INDEX_DTYPE",
    "INDEX_FIELDS",
    "MANIFEST_NAME",
    "TOKEN_DTYPES",
    "Member",
    "ShardManifest",
    "build_manifest",
    "index_bytes",
    "index_matrix",
    "index_name",
    "iter_members",
    "manifest_bytes",
    "manifest_location",
    "parse_manifest",
    "read_index",
    "read_manifest",
    "sample_json",
    "shard_name",
]
