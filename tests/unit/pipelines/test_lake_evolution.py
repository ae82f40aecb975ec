"""A lake written before the dedup evidence columns existed still loads, gains them, and reads old rows as null."""

from __future__ import annotations

import pyarrow as pa
from pyiceberg.schema import Schema

from pipelines import lake
from pipelines.config import Config
from schemas import TABLES
from schemas.base import TableDef

NEW = ("similarity", "verified_by", "cluster_size")


def test_older_doc_decisions_table_gains_the_evidence_columns(lake_config: Config) -> None:
    current = TABLES["doc_decisions"]
    old_schema = Schema(*[f for f in current.schema.fields if f.name not in NEW])
    old_def = TableDef(name="doc_decisions", schema=old_schema)
    catalog = lake.open_catalog(lake_config.lake)
    ns = lake_config.lake.namespace
    old = lake.ensure_table(catalog, ns, old_def)
    old_rows = old_def.arrow_schema.empty_table().to_pylist() + [{"doc_id": "d-old", "decision": "kept"}]
    f = lake.write_data_file(lake.data_dir(old), pa.Table.from_pylist(old_rows, old_def.arrow_schema), prefix="t")
    lake.commit_files(old, [f], {})

    table = lake.ensure_table(catalog, ns, "doc_decisions")  # what the next curate does
    assert all(name in table.schema().column_names for name in NEW)
    reloaded = catalog.load_table((ns, "doc_decisions"))
    assert reloaded.schema().column_names == table.schema().column_names
    assert lake.read_table(reloaded, ("doc_id", *NEW)).to_pylist() == [
        {"doc_id": "d-old", "similarity": None, "verified_by": None, "cluster_size": None}]

    new_rows = [{"doc_id": "d-new", "decision": "duplicate", "similarity": 0.875, "verified_by": "signature",
                 "cluster_size": None}]
    f = lake.write_data_file(lake.data_dir(reloaded), pa.Table.from_pylist(new_rows, current.arrow_schema), prefix="t")
    lake.commit_files(reloaded, [f], {})
    got = sorted(lake.read_table(reloaded, ("doc_id", "similarity", "verified_by")).to_pylist(), key=str)
    assert got == [{"doc_id": "d-new", "similarity": 0.875, "verified_by": "signature"},
                   {"doc_id": "d-old", "similarity": None, "verified_by": None}]
    # a second open finds nothing to add
    assert lake.ensure_table(catalog, ns, "doc_decisions").schema().schema_id == reloaded.schema().schema_id


def test_evolved_table_has_the_schema_of_a_fresh_one(lake_config: Config) -> None:
    current = TABLES["clean_docs"]
    old_def = TableDef(name="clean_docs", schema=Schema(*[f for f in current.schema.fields if f.name not in NEW]))
    catalog = lake.open_catalog(lake_config.lake)
    catalog.create_namespace("old_ns")
    catalog.create_namespace("fresh_ns")
    lake.ensure_table(catalog, "old_ns", old_def)
    evolved = lake.ensure_table(catalog, "old_ns", "clean_docs").schema()
    fresh = lake.ensure_table(catalog, "fresh_ns", "clean_docs").schema()
    assert [(f.field_id, f.name, f.field_type) for f in evolved.fields] == [
        (f.field_id, f.name, f.field_type) for f in fresh.fields]
