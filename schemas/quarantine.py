"""quarantine: records that could not become documents, with the raw bytes (bounded) and an error code."""

from pyiceberg.types import BinaryType, LongType, NestedField, StringType, TimestamptzType

from schemas.base import TableDef, make_schema
from schemas.raw_docs import SOURCE_FIELDS

TABLE = TableDef(
    name="quarantine",
    schema=make_schema(
        NestedField(1, "error_code", StringType(), required=False),
        NestedField(2, "error_detail", StringType(), required=False),
        *SOURCE_FIELDS,
        NestedField(7, "raw", BinaryType(), required=False, doc="first ingest.quarantine_raw_bytes bytes"),
        NestedField(8, "raw_size", LongType(), required=False, doc="size of the whole raw record in bytes"),
        NestedField(9, "ingested_at", TimestamptzType(), required=False),
        NestedField(10, "run_id", StringType(), required=False),
    ),
)
