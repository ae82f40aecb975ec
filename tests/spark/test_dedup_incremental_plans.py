"""Incremental dedup's two Spark plans: the one-task plan (a bounded candidate set decided on the driver by the
local engine) and the distributed plan give the same rows, for any partitioning."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from test_dedup_spark import _chains, _with_signatures

from dedup.config import DedupConfig
from dedup.incremental.spark import OldRows, band_match, duplicates_incremental, is_in_match
from pipelines.lake.files.spark import read_matching_df

pytestmark = pytest.mark.spark


def _old_and_new(cfg: DedupConfig) -> tuple[pa.Table, pa.Table]:
    """Old (kept earlier): each chain's `a` end and the first variant of each small-corpus base; new: the rest,
    plus a byte-identical copy of an old document."""
    table = _with_signatures(_chains(), cfg)
    ids = table["doc_id"]
    old_mask = pc.or_(pc.ends_with(ids, "-a"), pc.match_substring_regex(ids, r"^doc-[0-2]-0$"))
    old, new = table.filter(old_mask), table.filter(pc.invert(old_mask))
    copy = old.filter(pc.equal(old["doc_id"], "chain-1-a")).set_column(0, "doc_id", pa.array(["new-copy"]))
    return old, pa.concat_tables([new, copy])


@pytest.mark.parametrize("precomputed", [True, False])
def test_one_task_and_distributed_incremental_dedup_give_the_same_rows(spark, tmp_path, precomputed) -> None:  # type: ignore[no-untyped-def]
    cfg = DedupConfig()
    old, new = _old_and_new(cfg)
    if not precomputed:  # the signatures computed from text, on the driver or in the distributed pass
        new = new.drop_columns(["signature", "band_keys"])
    old_hashes = spark.createDataFrame(old.select(["doc_id", "exact_hash"]).to_pandas())
    index = spark.createDataFrame(old.filter(pc.is_valid(old["signature"]))
                                  .select(["doc_id", "signature", "band_keys"]).to_pandas())
    new_df = spark.createDataFrame(new.to_pandas())
    results = {}
    plans = {"one task": 1 << 28, "distributed": 0} if precomputed else {"one task": 1 << 28}
    for name, max_bytes in plans.items():
        plan_cfg = cfg.model_copy(update={"single_task_max_bytes": max_bytes})
        for parts in (1, 5):
            stats: dict[str, int] = {}
            got = duplicates_incremental(new_df.repartition(parts), old_hashes, index.repartition(parts),
                                         cfg=plan_cfg, checkpoint_dir=str(tmp_path / f"cp-{max_bytes}-{parts}"),
                                         stats=stats)
            results[name, parts] = (sorted(tuple(r) for r in got.collect()), stats)
            assert stats["dedup_one_task"] == int(max_bytes > 0)
    rows, stats = results["one task", 1]
    by_id = {r[0]: r for r in rows}
    # old documents are never removed and win their clusters, whatever the keep rule says
    assert not {r[0] for r in rows} & set(old["doc_id"].to_pylist())
    assert by_id["new-copy"][1:3] == ("chain-1-a", "chain-1-a") and by_id["new-copy"][5] == "exact"
    assert by_id["doc-9-0"][2] == "doc-0-0" and by_id["doc-9-0"][5] == "exact"  # a copy of an old document
    assert all(by_id[f"chain-{k}-b"][2] == f"chain-{k}-a" and by_id[f"chain-{k}-b"][5] == "near" for k in range(4))
    assert {r[2] for r in rows if r[0].startswith("doc-")} == {"doc-0-0", "doc-1-0", "doc-2-0"}
    assert stats["near_largest_component"] >= 2 and stats["near_components_over_max_cluster"] == 0
    for key, (other_rows, other_stats) in results.items():
        assert other_rows == rows, key
        assert {k: v for k, v in other_stats.items() if k != "dedup_one_task"} == \
            {k: v for k, v in stats.items() if k != "dedup_one_task"}, key


def _files(table: pa.Table, folder: Path, rows_per_group: int) -> list[tuple[str, int]]:
    """`table` as two Parquet files of row groups of `rows_per_group` rows: read units (the second file from
    its second row group on)."""
    folder.mkdir()
    half = table.num_rows // 2
    paths = [folder / "a.parquet", folder / "b.parquet"]
    pq.write_table(table.slice(0, half), paths[0], row_group_size=rows_per_group)
    pq.write_table(table.slice(half), paths[1], row_group_size=rows_per_group)
    first = pq.ParquetFile(paths[1]).num_row_groups
    assert first > 1
    return [(paths[0].as_uri(), -1), (paths[1].as_uri(), 0)]


def test_old_rows_read_from_files_give_the_same_rows(spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The one-task plan finding the old rows with read_matching_df (key column first, the rest only of
    row groups with a match: what the curate stage does) decides as with DataFrames of the whole history."""
    cfg = DedupConfig()
    old, new = _old_and_new(cfg)
    hashes = old.select(["doc_id", "exact_hash"])
    index = old.filter(pc.is_valid(old["signature"])).select(["doc_id", "signature", "band_keys"])
    units = {"hashes": _files(hashes, tmp_path / "hashes", 3), "index": _files(index, tmp_path / "index", 2)}
    keys = {"hashes": ["exact_hash"], "index": ["band_keys"]}
    schemas = {"hashes": hashes.schema, "index": index.schema}

    def old_rows(kind: str, match):  # type: ignore[no-untyped-def]
        return read_matching_df(spark, units[kind], schemas[kind], keys=keys[kind], match=match, tasks=2)

    files: OldRows = old_rows
    # the reader returns exactly the matching rows, whole, from every unit
    wanted = pa.array(["chain-1-a", "doc-0-0"])
    got = read_matching_df(spark, units["hashes"], hashes.schema, keys=["doc_id"],
                           match=is_in_match("doc_id", wanted)).toArrow()
    assert sorted(got.to_pylist(), key=lambda r: r["doc_id"]) == sorted(
        hashes.filter(pc.is_in(hashes["doc_id"], value_set=wanted)).to_pylist(), key=lambda r: r["doc_id"])
    some = index.slice(index.num_rows - 1)  # a row of the second file's last row group
    keys_of = pc.list_flatten(some["band_keys"]).to_numpy().reshape(1, -1)
    met = old_rows("index", band_match(keys_of)).toArrow()
    assert some["doc_id"][0].as_py() in met["doc_id"].to_pylist()
    assert met.filter(pc.equal(met["doc_id"], some["doc_id"][0]))["signature"][0] == some["signature"][0]

    new_df = spark.createDataFrame(new.to_pandas())
    old_hashes = spark.createDataFrame(hashes.to_pandas())
    index_df = spark.createDataFrame(index.to_pandas())
    plan_cfg = cfg.model_copy(update={"single_task_max_bytes": 1 << 28})
    results = []
    for rows in (None, files):
        stats: dict[str, int] = {}
        got_df = duplicates_incremental(new_df, old_hashes, index_df, cfg=plan_cfg, stats=stats, old_rows=rows)
        results.append(sorted(tuple(r) for r in got_df.collect()))
        assert stats["dedup_one_task"] == 1
    assert results[0] == results[1] and len(results[0]) > 5
