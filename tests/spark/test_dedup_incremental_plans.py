"""Incremental dedup's two Spark plans: the one-task plan (a bounded candidate set decided on the driver by the
local engine) and the distributed plan give the same rows, for any partitioning."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from test_dedup_spark import _chains, _with_signatures

from dedup.config import DedupConfig
from dedup.incremental.spark import duplicates_incremental

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
