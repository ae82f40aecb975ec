"""tokens: each kept document's token ids as little-endian bytes (dtype in the table property token_dtype)."""

from pyiceberg.types import BinaryType, IntegerType, NestedField, StringType

from schemas.base import TableDef, make_schema

TABLE = TableDef(
    name="tokens",
    schema=make_schema(
        NestedField(1, "doc_id", StringType(), required=False),
        NestedField(2, "tokens", BinaryType(), required=False, doc="little-endian uint16 or uint32 ids"),
        NestedField(3, "n_tokens", IntegerType(), required=False),
        NestedField(4, "source", StringType(), required=False, doc="source_type:source_uri"),
    ),
)
