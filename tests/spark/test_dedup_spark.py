"""The Spark dedup path: contract columns, agreement with the local path, independence from partitioning."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dedup.components.spark import connected_components
from dedup.config import DedupConfig
from dedup.exact import text_hash128_hex
from dedup.local import (
    component_stats,
    duplicates_local,
    exact_duplicates_local,
    near_duplicates_local,
    signature_columns,
)
from dedup.spark import duplicates, exact_duplicates, near_duplicates
from dedup.steps.spark import Steps

pytestmark = pytest.mark.spark

BASE = [
    "the quick brown fox jumps over the lazy dog while the farmer sleeps in the warm afternoon sun "
    "and the cows wander slowly across the green field towards the old red barn by the river",
    "in the beginning god created the heaven and the earth and the earth was without form and void "
    "and darkness was upon the face of the deep and the spirit moved upon the face of the waters",
    "a hacker is a person who enjoys exploring the details of programmable systems and how to stretch "
    "their capabilities as opposed to most users who prefer to learn only the minimum necessary",
]


def _corpus() -> pa.Table:
    texts, ids, quality = [], [], []
    for i, base in enumerate(BASE):
        words = base.split()
        variants = [base, base + " indeed", " ".join(words[:-1]), " ".join(words[1:]) + " again"]
        for j, text in enumerate(variants):
            ids.append(f"doc-{i}-{j}")
            texts.append(text)
            quality.append(float(j == 2))
    ids.append("doc-9-0")
    texts.append(BASE[0])  # an exact copy of doc-0-0
    quality.append(None)
    ids.append("doc-9-1")
    texts.append("")  # no shingles: never a near duplicate
    quality.append(0.5)
    table = pa.table({"doc_id": ids, "text": texts, "quality_score": pa.array(quality, pa.float64())})
    return table.append_column("n_chars", pa.array([len(t) for t in texts], pa.int64())).append_column(
        "exact_hash", text_hash128_hex(table["text"])
    )


def _rows(df) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    return sorted((r["doc_id"], r["cluster_id"], r["kept_doc_id"]) for r in df.collect())


def _full(df) -> list[tuple[str, str, str, float, str]]:  # type: ignore[no-untyped-def]
    return sorted((r["doc_id"], r["cluster_id"], r["kept_doc_id"], r["similarity"], r["verified_by"])
                  for r in df.collect())


def _chains() -> pa.Table:
    """Chains A~B~C (A !~ C) of 200-word documents, four of them, plus the small corpus: B is A with one
    12-word block replaced, C is B with another (J(A,B) ~ 0.85, J(A,C) ~ 0.73)."""
    import numpy as np

    ids, texts, quality = [], [], []
    for k in range(4):
        rng = np.random.default_rng(k)
        a = [f"w{int(x)}" for x in rng.integers(0, 50_000, size=200)]
        b = a[:40] + [f"v{int(x)}" for x in rng.integers(0, 50_000, size=12)] + a[52:]
        c = b[:140] + [f"u{int(x)}" for x in rng.integers(0, 50_000, size=12)] + b[152:]
        for name, words, q in (("a", a, 0.9 if k % 2 else 0.1), ("b", b, 0.5), ("c", c, 0.1 if k % 2 else 0.9)):
            ids.append(f"chain-{k}-{name}")
            texts.append(" ".join(words))
            quality.append(q)
    small = _corpus()
    chains = pa.table({"doc_id": ids, "text": texts, "quality_score": pa.array(quality, pa.float64()),
                       "n_chars": pa.array([len(t) for t in texts], pa.int64())})
    chains = chains.append_column("exact_hash", text_hash128_hex(chains["text"]))
    return pa.concat_tables([small, chains.cast(small.schema)])


def test_exact_duplicates_contract(spark) -> None:  # type: ignore[no-untyped-def]
    df = spark.createDataFrame(_corpus().to_pandas())
    rows = _rows(exact_duplicates(df, keep=DedupConfig().keep))
    # doc-0-0 (quality 0.0) beats doc-9-0 (null quality sorts last)
    assert rows == [("doc-9-0", "doc-0-0", "doc-0-0")]
    assert exact_duplicates(df, keep=["doc_id"]).columns == ["doc_id", "cluster_id", "kept_doc_id", "similarity",
                                                            "verified_by"]
    assert _full(exact_duplicates(df, keep=DedupConfig().keep))[0][3:] == (1.0, "exact_hash")


def test_near_duplicates_clusters_and_keep_rule(spark) -> None:  # type: ignore[no-untyped-def]
    df = spark.createDataFrame(_corpus().to_pandas())
    rows = _rows(near_duplicates(df, cfg=DedupConfig()))
    removed = {r[0] for r in rows}
    # each base has four variants; the one with quality 1.0 (j == 2) is kept, the empty doc is never touched
    assert {r[2] for r in rows} == {"doc-0-2", "doc-1-2", "doc-2-2"}
    assert "doc-9-1" not in removed and not removed & {"doc-0-2", "doc-1-2", "doc-2-2"}
    assert {r[1] for r in rows} == {"doc-0-0", "doc-1-0", "doc-2-0"}
    assert len(rows) == 10  # 3 clusters x 3 removed + the exact copy doc-9-0


@pytest.mark.parametrize(("verify", "driver_max"), [("signature", 0), ("shingles", 2_000_000)])
def test_near_duplicates_independent_of_partitioning_and_equal_to_local(spark, tmp_path, verify, driver_max) -> None:  # type: ignore[no-untyped-def]
    # components by distributed rounds (driver_max 0) and by union-find on the driver: the same decisions
    table = _chains()
    cfg = DedupConfig(verify=verify, driver_components_max_edges=driver_max)
    expected = near_duplicates_local(table.to_batches(max_chunksize=3), cfg=cfg)
    want = sorted(zip(*(expected[c].to_pylist() for c in expected.column_names), strict=True))
    # each chain's winning end (c for even k, a for odd k) removes the middle only; the other end stays
    removed = {r[0]: r for r in want}
    for k in range(4):
        win, other = ("c", "a") if k % 2 == 0 else ("a", "c")
        assert removed[f"chain-{k}-b"][2] == f"chain-{k}-{win}" and f"chain-{k}-{other}" not in removed
    assert {r[4] for r in want} == {verify} and min(r[3] for r in want) >= cfg.removal_floor()
    df = spark.createDataFrame(table.to_pandas())
    for parts in (1, 5):
        stats: dict[str, int] = {}
        got = _full(near_duplicates(df.repartition(parts), cfg=cfg, checkpoint_dir=str(tmp_path / f"cp{parts}"),
                                    stats=stats))
        assert got == want
        assert stats == {"near_largest_component": 5, "near_components_over_max_cluster": 0}  # doc-0-* and its copy
    exact = exact_duplicates_local([table], keep=cfg.keep)
    assert exact["doc_id"].to_pylist() == ["doc-9-0"]


def _with_signatures(table: pa.Table, cfg: DedupConfig) -> pa.Table:
    """The table as the curate stage's filter pass leaves it: its own signature and band_keys columns."""
    sig, keys = signature_columns(table["text"], cfg)
    return table.append_column("signature", sig).append_column("band_keys", keys)


def _with_singles(table: pa.Table) -> pa.Table:
    """The chains corpus plus ten 3 KB documents near nothing: texts no candidate edge reaches."""
    import numpy as np

    rng = np.random.default_rng(7)
    texts = [" ".join(f"s{int(x)}" for x in rng.integers(0, 1_000_000, size=450)) for _ in range(10)]
    singles = pa.table({"doc_id": [f"single-{k}" for k in range(10)], "text": texts,
                        "quality_score": pa.array([0.5] * 10, pa.float64()),
                        "n_chars": pa.array([len(t) for t in texts], pa.int64())})
    singles = singles.append_column("exact_hash", text_hash128_hex(singles["text"]))
    return pa.concat_tables([table, singles.cast(table.schema)])


def _budgets(plan: str, table: pa.Table, cfg: DedupConfig) -> dict[str, int]:
    """curate.dedup budgets that pick `plan` for `table` (precomputed signatures, shingles)."""
    from dedup.spark import driver_plan_bytes

    n, text = table.num_rows, sum(len(t.encode()) for t in table["text"].to_pylist())
    lean = driver_plan_bytes(cfg, n, text, texts=False)
    return {"driver-texts": {}, "distributed": {"single_task_max_bytes": 0}, "one-task": {"driver_max_bytes": 0},
            # all texts do not fit, the candidates' texts (under half of them here) do: fetched by a second job
            "driver": {"driver_max_bytes": lean + text // 2},
            # the candidates' texts do not fit either: the driver plan hands over to the distributed plan
            "driver-too-small": {"driver_max_bytes": lean + 64, "single_task_max_bytes": lean + 64}}[plan]


@pytest.mark.parametrize(("plan", "precomputed"), [
    ("driver-texts", True), ("distributed", True), ("driver-texts", False), ("driver", True), ("one-task", True),
    ("one-task", False), pytest.param("driver-too-small", True, marks=pytest.mark.slow)])
def test_duplicates_plans_equal_each_other_and_local(spark, tmp_path, plan, precomputed) -> None:  # type: ignore[no-untyped-def]
    # the curate stage's entry point: exact then near, exact removals re-pointed to the document kept instead;
    # on the driver (the local engine's code; every text collected at once, or only the candidates' texts
    # fetched afterwards), in one task on an executor (the same code) or the distributed plan, 1 or 5
    # partitions: same rows
    table = _with_singles(_chains())
    cfg = DedupConfig()
    cfg = cfg.model_copy(update=_budgets(plan, table, cfg))
    table = _with_signatures(table, cfg) if precomputed else table
    expected = duplicates_local(table, cfg=cfg)
    want = sorted(zip(*(expected[c].to_pylist() for c in expected.column_names), strict=True))
    by_id = {r[0]: r for r in want}
    # doc-9-0 is an exact copy of doc-0-0, which near dedup removes in favour of doc-0-2: re-pointed there
    assert by_id["doc-9-0"][2] == by_id["doc-0-0"][2] == "doc-0-2" and by_id["doc-9-0"][5] == "exact"
    assert by_id["doc-9-0"][3:5] == by_id["doc-0-0"][3:5] and by_id["doc-0-0"][5] == "near"
    assert "chain-0-b" in by_id and "chain-0-a" not in by_id and not any(d.startswith("single") for d in by_id)
    assert component_stats(expected) == {"near_largest_component": 4, "near_components_over_max_cluster": 0}
    df = spark.createDataFrame(table.to_pandas())
    local_code = plan in ("driver-texts", "driver", "one-task")
    want_stats = {**component_stats(expected), "dedup_one_task": int(local_code),
                  "dedup_on_driver": int(plan in ("driver-texts", "driver"))}
    for parts in (1, 5):  # the one-task plan here: the columns moved into its partition by a shuffle
        stats: dict[str, int] = {}
        got = duplicates(df.repartition(parts), cfg=cfg, checkpoint_dir=str(tmp_path / f"cp{parts}"), stats=stats)
        assert sorted(tuple(r) for r in got.collect()) == want
        assert stats == want_stats
    if local_code and precomputed:
        # the input as a persisted step (curate's way), its columns read where dedup runs: on the driver, or
        # by the one task itself (with only the candidates' texts); the one task's rows are a persisted step
        # that a second run reads back with its component report, deduplicating nothing again
        steps = Steps(spark, str(tmp_path / "steps"))
        persisted = steps.materialize("input", lambda: df.repartition(5))
        for attempt in range(2 if plan == "one-task" else 1):
            stats = {}
            run_steps = Steps(spark, str(tmp_path / "steps"))
            got = duplicates(persisted, cfg=cfg, stats=stats, steps=run_steps, reader=steps.reader("input"))
            assert sorted(tuple(r) for r in got.collect()) == want
            assert stats == want_stats
            assert run_steps.reused == (["duplicates"] if attempt else [])


def test_plan_choice_by_budget(spark) -> None:  # type: ignore[no-untyped-def]
    # documents of 768 dedup bytes (DedupConfig defaults) and 1,000 text bytes each, signatures precomputed:
    # the driver plan up to driver_max_bytes, the one-task plan up to single_task_max_bytes, then distributed
    from dedup.spark import choose_plan, driver_plan_bytes

    cfg = DedupConfig()
    df = spark.createDataFrame(_with_signatures(_corpus(), cfg).to_pandas())
    per_doc = driver_plan_bytes(cfg, 1, 0, texts=False)
    assert per_doc == 768
    driver_docs, task_docs = (64 << 20) // per_doc, (512 << 20) // per_doc

    def plan(docs: int, *, readable: bool = True, **budgets: int) -> str:
        return choose_plan(df, cfg.model_copy(update=budgets), (docs, 1000 * docs), readable=readable)[0]

    assert plan(100) == "driver-texts"  # texts and all fit the driver's 64 MiB
    assert plan(driver_docs // 2) == "driver"  # only without texts: the candidates' texts fetched later
    assert plan(driver_docs + 1) == "one-task"  # the task reads the candidates' texts itself
    assert plan(task_docs) == "one-task"
    assert plan(task_docs + 1) == "distributed"
    assert plan(task_docs // 2, readable=False) == "distributed"  # all texts moved to the task: too many
    assert plan(task_docs // 4, readable=False) == "one-task"
    assert plan(100, driver_max_bytes=0) == "one-task"
    assert plan(100, single_task_max_bytes=0) == "distributed"
    # a larger driver budget: still capped by spark.driver.maxResultSize (the session's default, 1g)
    assert plan(task_docs // 2, driver_max_bytes=1 << 40) == "driver"
    assert plan((1 << 30) // per_doc + 1, driver_max_bytes=1 << 40, single_task_max_bytes=1 << 40) == "one-task"
    assert plan(200, single_task_max_bytes=100 * per_doc) == "distributed"  # the task's budget caps both


def test_driver_budget_is_capped_by_max_result_size(spark) -> None:  # type: ignore[no-untyped-def]
    from dedup.spark import batch_budget, driver_budget, driver_plan_bytes

    cap = {"1g": 1 << 30, "512m": 512 << 20}[spark.conf.get("spark.driver.maxResultSize", "1g")]
    assert driver_budget(spark, DedupConfig()) == 64 << 20  # a fixed bound, whatever the corpus
    assert driver_budget(spark, DedupConfig(driver_max_bytes=5)) == 5
    assert driver_budget(spark, DedupConfig(driver_max_bytes=1 << 40, single_task_max_bytes=1 << 41)) == cap
    assert driver_budget(spark, DedupConfig(single_task_max_bytes=7)) == 7
    assert batch_budget(spark, DedupConfig()) == 512 << 20  # incremental's small batches
    assert batch_budget(spark, DedupConfig(single_task_max_bytes=1 << 40)) == cap
    # signature 512 + band keys 16 x 8 + 128 bytes a document, plus the texts when asked for
    assert driver_plan_bytes(DedupConfig(), 10, 1000, texts=False) == 10 * 768
    assert driver_plan_bytes(DedupConfig(), 10, 1000, texts=True) == 10 * 768 + 1000


def test_connected_components_long_chain(spark) -> None:  # type: ignore[no-untyped-def]
    # a path 0-1-2-...-39 (zero-padded ids) plus a separate pair: one round of label propagation would need 39
    edges = [(f"n{i:02d}", f"n{i + 1:02d}") for i in range(39)] + [("x1", "x2")]
    df = spark.createDataFrame(edges, "a string, b string")
    comps = dict((r["doc_id"], r["cluster_id"]) for r in
                 connected_components(df, max_iterations=20, checkpoint_every=2).collect())
    assert set(comps) == {f"n{i:02d}" for i in range(40)} | {"x1", "x2"}
    assert {comps[f"n{i:02d}"] for i in range(40)} == {"n00"}
    assert comps["x1"] == comps["x2"] == "x1"


def test_connected_components_iteration_bound(spark) -> None:  # type: ignore[no-untyped-def]
    from dedup.errors import DedupError

    edges = [(f"n{i:02d}", f"n{i + 1:02d}") for i in range(39)]
    df = spark.createDataFrame(edges, "a string, b string")
    with pytest.raises(DedupError, match="max_iterations=1"):
        connected_components(df, max_iterations=1).collect()
