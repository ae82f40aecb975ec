"""clean_docs: documents kept by curate, normalized, with their quality signals."""

from pyiceberg.types import NestedField, StringType

from schemas.base import TableDef, make_schema
from schemas.raw_docs import SOURCE_FIELDS
from schemas.signals import SIGNAL_FIELDS

TABLE = TableDef(
    name="clean_docs",
    schema=make_schema(
        NestedField(1, "doc_id", StringType(), required=False),
        NestedField(2, "text", StringType(), required=False),
        *SOURCE_FIELDS,
        NestedField(7, "exact_hash", StringType(), required=False, doc="128-bit hash of the normalized text, hex"),
        *SIGNAL_FIELDS,
    ),
)
