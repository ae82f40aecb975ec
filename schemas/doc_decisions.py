"""doc_decisions: one row per raw document with its fate: kept, filtered (reason) or duplicate (exact/near)."""

from pyiceberg.types import NestedField, StringType

from schemas.base import TableDef, make_schema
from schemas.raw_docs import SOURCE_FIELDS
from schemas.signals import SIGNAL_FIELDS

DECISIONS = ("kept", "filtered", "duplicate")

TABLE = TableDef(
    name="doc_decisions",
    schema=make_schema(
        NestedField(1, "doc_id", StringType(), required=False),
        NestedField(2, "decision", StringType(), required=False, doc="kept | filtered | duplicate"),
        NestedField(7, "reason", StringType(), required=False, doc="filter reason code, or exact | near"),
        NestedField(8, "cluster_id", StringType(), required=False, doc="duplicate cluster (its smallest doc_id)"),
        NestedField(9, "kept_doc_id", StringType(), required=False, doc="the cluster member that was kept"),
        *SOURCE_FIELDS,
        *SIGNAL_FIELDS,
    ),
)
