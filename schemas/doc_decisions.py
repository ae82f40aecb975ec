"""doc_decisions: one row per raw document with its fate: kept, filtered (reason) or duplicate (exact/near).

Field ids 200-299 hold dedup evidence (added after the first release). A lake created before them gains
the columns on its next write (`pipelines.lake.ensure_table` evolves the schema; Iceberg then assigns its
next free ids, and data files are matched to columns by name); older rows read them as null.
"""

from pyiceberg.types import DoubleType, NestedField, StringType

from schemas.base import TableDef, make_schema
from schemas.clean_docs import CLUSTER_SIZE
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
        NestedField(200, "similarity", DoubleType(), required=False,
                    doc="a duplicate's Jaccard similarity to kept_doc_id (1.0 for exact duplicates)"),
        NestedField(201, "verified_by", StringType(), required=False,
                    doc="where the similarity comes from: exact_hash | signature (MinHash estimate) | shingles (exact)"),
        CLUSTER_SIZE,
    ),
)
