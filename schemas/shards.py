"""shards: one row per tar shard of the dataset, mirroring the manifest."""

from pyiceberg.types import IntegerType, LongType, NestedField, StringType

from schemas.base import TableDef, make_schema

TABLE = TableDef(
    name="shards",
    schema=make_schema(
        NestedField(1, "shard_index", IntegerType(), required=False),
        NestedField(2, "path", StringType(), required=False, doc="relative to the manifest's folder"),
        NestedField(3, "uri", StringType(), required=False),
        NestedField(4, "bytes", LongType(), required=False),
        NestedField(5, "n_samples", LongType(), required=False),
        NestedField(6, "n_tokens", LongType(), required=False),
        NestedField(7, "sha256", StringType(), required=False),
        NestedField(8, "manifest_uri", StringType(), required=False),
    ),
)
