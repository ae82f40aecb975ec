"""The data files appended since a consumed snapshot, found from the new snapshots' manifests only."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog

from pipelines import lake
from pipelines.stages.snapshots import InputPlan, appended_files, appended_rows, plan_input


def test_appended_files_are_the_new_snapshots_files(tmp_path: Path) -> None:
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=f"file://{tmp_path}/wh")
    catalog.create_namespace("n")
    table = catalog.create_table("n.x", schema=pa.schema([("a", pa.int64())]))
    snapshots = []
    for i in range(4):
        table.append(pa.table({"a": list(range(i + 1))}))
        snapshots.append(table.current_snapshot().snapshot_id)
    for since in range(3):
        got = appended_files(table, snapshots[since], snapshots[3])
        assert len(got) == 3 - since
        assert set(got) == set(lake.data_files(table, snapshots[3])) - set(lake.data_files(table, snapshots[since]))
    plan = plan_input(table, {"tokenmill.input_snapshot_id": str(snapshots[1]), "tokenmill.stage_params": "p"}, "p")
    assert (plan.mode, plan.appended_since, len(plan.files)) == ("incremental", snapshots[1], 2)
    assert appended_rows(table, plan) == 3 + 4  # the rows of the last two appends, from the summaries
    assert appended_rows(table, InputPlan("full", "", snapshots[3])) is None
