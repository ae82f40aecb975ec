"""The spine end to end on the tiny corpus: ingest -> curate -> train-tokenizer -> tokenize -> shard -> audit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from pyiceberg.schema import index_by_name

from pipelines import lake
from pipelines.config import Config, load_config
from pipelines.ops.audit import audit
from pipelines.stages import run_stage
from schemas import TABLES

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny"

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((TINY / "expected.json").read_text())


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, dict]:
    root = tmp_path_factory.mktemp("e2e") / "lake"
    cfg = load_config(None, [
        f"lake.root={root}",
        f"sources=[{{type: local, path: '{TINY / 'input'}'}}]",
        "curate.filters=[{name: length, min_words: 5, max_chars: 10000}]",
        f"tokenize.tokenizer={root}/tokenizer.json",
        "tokenize.train.vocab_size=600",
        "curate.dedup.keep=[-n_chars, doc_id]",  # copies are shorter: the original must win
        "shard.target_bytes=16384",
    ])
    reports = {}
    for stage in ("ingest", "curate", "train-tokenizer", "tokenize", "shard"):
        reports[stage] = run_stage(stage, cfg, spark)
    return cfg, reports


def _table(cfg: Config, name: str):
    return lake.read_table(lake.ensure_table(lake.open_catalog(cfg.lake), cfg.lake.namespace, name))


def test_counts_conserve(built, expected) -> None:
    cfg, reports = built
    raw, quarantine = _table(cfg, "raw_docs"), _table(cfg, "quarantine")
    assert raw.num_rows + quarantine.num_rows == expected["total_lines"]
    assert quarantine.num_rows == expected["malformed_lines"]
    assert reports["curate"].counts["raw_docs"] == raw.num_rows
    result = audit(cfg)
    assert result.ok, [c for c in result.checks if not c.ok]
    assert {c.name for c in result.checks} >= {"input = raw_docs + quarantine", "shard checksums",
                                                 "one decision per raw doc", "tokens = clean_docs"}


def test_decisions(built, expected) -> None:
    cfg, _ = built
    dec = {r["doc_id"]: r for r in _table(cfg, "doc_decisions").to_pylist()}
    for dup, original in expected["exact_duplicates"].items():
        assert (dec[dup]["decision"], dec[dup]["reason"], dec[dup]["kept_doc_id"]) == ("duplicate", "exact", original)
        assert dec[original]["decision"] == "kept"
    for dup, original in expected["near_duplicates"].items():
        assert (dec[dup]["decision"], dec[dup]["reason"], dec[dup]["kept_doc_id"]) == ("duplicate", "near", original)
        assert dec[original]["decision"] == "kept"
    for doc in expected["empty"]:
        assert (dec[doc]["decision"], dec[doc]["reason"]) == ("filtered", "empty")
    for doc in expected["too_short"]:
        assert (dec[doc]["decision"], dec[doc]["reason"]) == ("filtered", "too_short")
    for doc in expected["long"]:
        assert (dec[doc]["decision"], dec[doc]["reason"]) == ("filtered", "too_long")
    planted = (set(expected["exact_duplicates"]) | set(expected["near_duplicates"]) | set(expected["empty"])
               | set(expected["too_short"]) | set(expected["long"]))
    unexpected = {d: (r["decision"], r["reason"]) for d, r in dec.items() if d not in planted and r["decision"] != "kept"}
    # natural duplicates in real text are allowed, but only as duplicates of a kept document
    for doc, (decision, _) in unexpected.items():
        assert decision == "duplicate" and dec[dec[doc]["kept_doc_id"]]["decision"] == "kept", doc


def test_tokens_decode_to_normalized_text(built) -> None:
    from tokenizers import Tokenizer

    cfg, _ = built
    tok = Tokenizer.from_file(cfg.tokenize.tokenizer)
    tokens_t = lake.ensure_table(lake.open_catalog(cfg.lake), cfg.lake.namespace, "tokens")
    dtype = np.dtype(tokens_t.properties["token_dtype"]).newbyteorder("<")
    clean = {r["doc_id"]: r["text"] for r in _table(cfg, "clean_docs").to_pylist()}
    rows = _table(cfg, "tokens").to_pylist()
    assert {r["doc_id"] for r in rows} == set(clean)
    for r in rows:
        ids = np.frombuffer(r["tokens"], dtype=dtype)
        assert len(ids) == r["n_tokens"]
        assert tok.decode(ids.tolist(), skip_special_tokens=True) == clean[r["doc_id"]]


def test_webdataset_reads_every_kept_document_once(built) -> None:
    import webdataset as wds

    cfg, reports = built
    manifest_path = Path(reports["shard"].outputs["manifest"].removeprefix("file://"))
    manifest = json.loads(manifest_path.read_text())
    assert manifest["n_shards"] >= 2, "target_bytes is small enough to roll over"
    urls = [str(manifest_path.parent / s["path"]) for s in manifest["shards"]]
    for s in manifest["shards"][:-1]:
        assert s["bytes"] <= 16384
    seen: list[str] = []
    dtype = np.dtype(manifest["token_dtype"]).newbyteorder("<")
    tokens = {r["doc_id"]: r["tokens"] for r in _table(cfg, "tokens").to_pylist()}
    for sample in wds.WebDataset(urls, shardshuffle=False):
        meta = json.loads(sample["json"])
        seen.append(meta["doc_id"])
        assert np.frombuffer(sample["tokens"], dtype=dtype).tobytes() == tokens[meta["doc_id"]]
    kept = {r["doc_id"] for r in _table(cfg, "doc_decisions").to_pylist() if r["decision"] == "kept"}
    assert sorted(seen) == sorted(kept)


def test_stage_reads_its_input_at_a_version(built, spark, tmp_path: Path) -> None:
    """Runs last: a shard run from version v1's tokens snapshot reproduces the same shard bytes elsewhere."""
    from pipelines.ops.versions import create_version

    cfg, reports = built
    create_version(cfg, "v1", pin="none")
    first = json.loads(Path(reports["shard"].outputs["manifest"].removeprefix("file://")).read_text())
    again = cfg.model_copy(update={
        "lake": cfg.lake.model_copy(update={"read_version": "v1"}),
        "shard": cfg.shard.model_copy(update={"output": str(tmp_path / "shards-v1")}),
    })
    report = run_stage("shard", again, spark)
    second = json.loads(Path(report.outputs["manifest"].removeprefix("file://")).read_text())
    assert [s["sha256"] for s in second["shards"]] == [s["sha256"] for s in first["shards"]]
    assert second["n_samples"] == first["n_samples"] > 0


def test_loader_reads_a_dataset_version(built) -> None:
    from pipelines.ops.versions import manifest_resolver
    from sharding import TokenLoader

    cfg, _ = built
    loader = TokenLoader("v1", seq_len=64, batch_size=2, rank=0, world_size=1, resolver=manifest_resolver(cfg))
    batch = next(iter(loader))
    assert tuple(batch["input_ids"].shape) == (2, 64)
    assert int(batch["input_ids"].max()) < json.loads(Path(manifest_resolver(cfg)("v1")).read_text())["vocab_size"]


def _tables(cfg: Config) -> list:
    catalog = lake.open_catalog(cfg.lake)
    tables = [t for name in TABLES if (t := lake.load_table(catalog, cfg.lake.namespace, name)) is not None]
    assert {t.name()[-1] for t in tables} >= {"raw_docs", "quarantine", "clean_docs", "doc_decisions", "tokens",
                                              "shards", "dedup_index"}
    return tables


def _field_ids(fields) -> dict[str, int]:
    """Dotted column path -> Parquet field id (-1 where a field has none), list elements included."""
    ids: dict[str, int] = {}
    for f in fields:
        ids[f.name] = int((f.metadata or {}).get(b"PARQUET:field_id", -1))
        if pa.types.is_list(f.type) or pa.types.is_large_list(f.type):
            ids[f"{f.name}.element"] = int((f.type.value_field.metadata or {}).get(b"PARQUET:field_id", -1))
    return ids


def test_every_data_file_carries_the_live_tables_field_ids(built) -> None:
    cfg, _ = built
    n_files = 0
    for table in _tables(cfg):
        schema = table.schema()
        expected = index_by_name(schema)
        for task in table.scan().plan_files():
            path = task.file.file_path
            assert _field_ids(pq.read_schema(path.removeprefix("file://"))) == expected, (table.name(), path)
            n_files += 1
    assert n_files >= 7


def _duckdb_offline():
    """A DuckDB connection with the iceberg extension (and the avro one it needs) loaded from the
    duckdb-ext-* wheels: no extension directory, no autoinstall, nothing downloaded."""
    import duckdb
    import duckdb_ext

    folder = Path(next(iter(duckdb_ext.__path__))) / "extensions" / f"v{duckdb.__version__}"
    con = duckdb.connect(config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false",
                                 "allow_unsigned_extensions": "false"})
    for name in ("avro", "iceberg"):
        found = sorted(folder.glob(f"*/{name}.duckdb_extension"))
        assert found, f"duckdb-ext-{name} for DuckDB {duckdb.__version__} is not installed under {folder}"
        con.execute(f"LOAD '{found[0]}'")
    return con


def test_duckdb_iceberg_extension_reads_every_table(built) -> None:
    cfg, _ = built
    con = _duckdb_offline()
    for table in _tables(cfg):
        arrow = lake.read_table(table)
        scan = f"iceberg_scan('{table.metadata_location.removeprefix('file://')}')"
        first = table.schema().fields[0].name
        rows, values = con.execute(f'SELECT count(*), count("{first}") FROM {scan}').fetchone()
        assert rows == arrow.num_rows, table.name()
        assert values == arrow.num_rows - arrow.column(first).null_count, table.name()
        if table.name()[-1] == "tokens":  # values, not only row counts: columns resolve by field id
            total = con.execute(f"SELECT sum(n_tokens) FROM {scan}").fetchone()[0]
            assert total == sum(arrow.column("n_tokens").to_pylist()) > 0


def test_audit_finds_a_planted_duplicate_and_a_lost_document(built, tmp_path: Path, capsys) -> None:
    """A raw data file committed twice and a kept document missing from clean_docs: the Spark-aggregate audit
    names both and `tokenmill audit` exits non-zero; the tables are put back afterwards."""
    import shutil

    from pipelines.cli import main

    cfg, _ = built
    catalog = lake.open_catalog(cfg.lake)
    raw = lake.load_table(catalog, cfg.lake.namespace, "raw_docs")
    clean = lake.load_table(catalog, cfg.lake.namespace, "clean_docs")
    before = [(t, t.current_snapshot().snapshot_id) for t in (raw, clean)]
    copied = lake.data_files(raw)[0].removeprefix("file://")
    planted = f"{Path(copied).parent}/planted-copy.parquet"
    shutil.copyfile(copied, planted)
    n_copied = pq.read_metadata(planted).num_rows
    kept = lake.read_table(clean)
    try:
        lake.commit_files(raw, [f"file://{planted}"], lake.snapshot_summary(cfg, "test", "planted"))
        lost = kept.slice(1).cast(lake.file_schema(clean, kept.schema))
        lake.commit_files(clean, [lake.write_data_file(lake.data_dir(clean), lost, prefix="planted")],
                          lake.snapshot_summary(cfg, "test", "planted"), overwrite=True)
        result = {c.name: c for c in audit(cfg).checks}
        assert not result["each input record once"].ok
        assert result["each input record once"].detail.startswith(f"{n_copied} record(s) ingested more than once")
        assert not result["one decision per raw doc"].ok
        assert not result["clean_docs = kept"].ok
        assert result["clean_docs = kept"].detail == f"{kept.num_rows - 1} vs {kept.num_rows} rows"
        assert not result["tokens = clean_docs"].ok
        assert result["raw_docs = kept + filtered + duplicate"].ok is False
        params = tmp_path / "params.yaml"
        params.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
        assert main(["audit", "--config", str(params)]) != 0
        assert "audit failed" in capsys.readouterr().err
    finally:
        for table, snapshot_id in before:
            table.refresh()
            table.manage_snapshots().set_current_snapshot(snapshot_id).commit()
    assert audit(cfg).ok
