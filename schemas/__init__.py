"""Table schemas: one module per table, each exposing `TABLE` (a `TableDef`)."""

from schemas import clean_docs, dedup_index, doc_decisions, quarantine, raw_docs, shards, tokens
from schemas.base import TableDef

TABLES: dict[str, TableDef] = {
    m.TABLE.name: m.TABLE for m in (raw_docs, quarantine, clean_docs, doc_decisions, tokens, shards, dedup_index)
}

__all__ = ["TABLES", "TableDef"]
