"""clean_docs: documents kept by curate, normalized, with their quality signals."""

from pyiceberg.types import LongType, NestedField, StringType

from schemas.base import TableDef, make_schema
from schemas.raw_docs import SOURCE_FIELDS
from schemas.signals import SIGNAL_FIELDS

# documents this kept document stands for: itself, its exact and near duplicates (and theirs), for mixes that
# up-sample by duplicate count; 1 for a document without duplicates. Field ids 200-299: see doc_decisions.
CLUSTER_SIZE = NestedField(202, "cluster_size", LongType(), required=False,
                           doc="kept documents: raw documents this one stands for (itself included)")

TABLE = TableDef(
    name="clean_docs",
    schema=make_schema(
        NestedField(1, "doc_id", StringType(), required=False),
        NestedField(2, "text", StringType(), required=False),
        *SOURCE_FIELDS,
        NestedField(7, "exact_hash", StringType(), required=False, doc="128-bit hash of the normalized text, hex"),
        *SIGNAL_FIELDS,
        CLUSTER_SIZE,
    ),
)
