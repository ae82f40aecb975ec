"""raw_docs: every ingested document, as read, with its source coordinates."""

from pyiceberg.types import IntegerType, LongType, NestedField, StringType, TimestamptzType

from schemas.base import TableDef, make_schema

SOURCE_FIELDS = (
    NestedField(3, "source_type", StringType(), required=False, doc="local | s3 | kafka"),
    NestedField(4, "source_uri", StringType(), required=False, doc="object URI, or kafka topic"),
    NestedField(5, "source_partition", IntegerType(), required=False, doc="kafka partition"),
    NestedField(6, "source_offset", LongType(), required=False, doc="line/row in the object, or kafka offset"),
)

TABLE = TableDef(
    name="raw_docs",
    schema=make_schema(
        NestedField(1, "doc_id", StringType(), required=False),
        NestedField(2, "text", StringType(), required=False),
        *SOURCE_FIELDS,
        NestedField(7, "metadata", StringType(), required=False, doc="JSON of the record's other fields"),
        NestedField(8, "ingested_at", TimestamptzType(), required=False),
        NestedField(9, "run_id", StringType(), required=False),
    ),
)
