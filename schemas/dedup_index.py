"""dedup_index: the MinHash signature and LSH band keys of every kept document, so that a later curate run
can deduplicate new documents against earlier dataset versions without recomputing the old signatures.

One row per kept document that has at least one shingle (kept documents without shingles can only be exact
duplicates, which clean_docs.exact_hash covers). The signature is stored once per document rather than once
per band: a row is 4 * num_perm + 8 * bands bytes plus the doc_id. Band keys and signatures are only
comparable under the same (num_perm, bands, rows, ngram, shingle, seed); every commit records them in its
snapshot summary (`tokenmill.dedup_index.params`) and a run with other parameters rebuilds the table.
"""

from pyiceberg.types import BinaryType, ListType, LongType, NestedField, StringType

from schemas.base import TableDef, make_schema

TABLE = TableDef(
    name="dedup_index",
    schema=make_schema(
        NestedField(1, "doc_id", StringType(), required=False, doc="a kept document (clean_docs.doc_id)"),
        NestedField(2, "signature", BinaryType(), required=False, doc="num_perm little-endian uint32 MinHash values"),
        NestedField(
            3, "band_keys", ListType(4, LongType(), element_required=False), required=False,
            doc="one 64-bit key per LSH band, band i at position i",
        ),
    ),
)
