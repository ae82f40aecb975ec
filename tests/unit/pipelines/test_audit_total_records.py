"""The audit counts a table's rows from Iceberg metadata, with or without `total-records` in the snapshot summary."""

from __future__ import annotations

import pyarrow as pa

from pipelines import lake
from pipelines.config import Config
from pipelines.ops.audit import total_records
from schemas import TABLES


def _commit(table, ids: list[str]) -> None:  # type: ignore[no-untyped-def]
    schema = TABLES["doc_decisions"].arrow_schema
    rows = [{"doc_id": d, "decision": "kept"} for d in ids]
    f = lake.write_data_file(lake.data_dir(table), pa.Table.from_pylist(rows, schema), prefix="t")
    lake.commit_files(table, [f], {})


def test_total_records_from_the_summary_and_from_the_data_files_without_it(lake_config: Config) -> None:
    catalog = lake.open_catalog(lake_config.lake)
    table = lake.ensure_table(catalog, lake_config.lake.namespace, "doc_decisions")
    assert total_records(table) == 0 and total_records(None) == 0
    _commit(table, ["a", "b", "c"])
    table = catalog.load_table((lake_config.lake.namespace, "doc_decisions"))
    _commit(table, ["d", "e"])
    table = catalog.load_table((lake_config.lake.namespace, "doc_decisions"))
    assert total_records(table) == 5

    # A snapshot another engine wrote without the total: counted from the two data files' record counts.
    summary = table.current_snapshot().summary  # type: ignore[union-attr]
    assert summary is not None and summary.additional_properties.pop("total-records") == "5"
    assert len(list(table.scan().plan_files())) == 2
    assert total_records(table) == 5
