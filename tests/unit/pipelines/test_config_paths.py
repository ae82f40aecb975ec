"""Config paths resolved once against the config file's folder; passwords masked wherever a URI is shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli.tables import print_reports
from pipelines.config import load_config
from pipelines.config_paths import mask_uri, masked_properties
from pipelines.stages.report import StageReport

CONFIG = """
lake:
  root: lake
  scratch: tmp/scratch
  metrics_dir: metrics
  catalog: {uri: "sqlite:///cat/catalog.db"}
sources:
  - {type: local, path: data/in}
  - {type: s3, uri: "s3://bucket/in"}
tokenize: {tokenizer: tok/tokenizer.json}
shard: {output: out/shards}
monitor: {prometheus_file: prom/tokenmill.prom}
"""


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf_dir = tmp_path / "project"
    conf_dir.mkdir()
    (conf_dir / "params.yaml").write_text(CONFIG)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config("../project/params.yaml", ["lake.warehouse=wh"])
    assert cfg.lake.root == str(conf_dir / "lake")
    assert cfg.lake.warehouse == str(conf_dir / "wh")
    assert cfg.lake.warehouse_uri() == f"file://{conf_dir / 'wh'}"
    assert cfg.lake.scratch_uri() == f"file://{conf_dir / 'tmp' / 'scratch'}"
    assert cfg.lake.metrics_dir == str(conf_dir / "metrics")
    assert cfg.lake.catalog_properties()["uri"] == f"sqlite:///{conf_dir / 'cat' / 'catalog.db'}"
    assert cfg.sources[0].path == str(conf_dir / "data" / "in")  # type: ignore[union-attr]
    assert cfg.sources[1].uri == "s3://bucket/in"  # type: ignore[union-attr]
    assert cfg.tokenize.tokenizer == str(conf_dir / "tok" / "tokenizer.json")
    assert cfg.shards_uri() == str(conf_dir / "out" / "shards")
    assert cfg.monitor.prometheus_file == str(conf_dir / "prom" / "tokenmill.prom")


def test_without_a_file_paths_resolve_against_the_working_directory(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["shard.output=s3://b/shards", "lake.scratch=s3://b/scratch"])
    assert cfg.lake.root == str(tmp_path / "lake")
    assert cfg.tokenize.tokenizer == str(tmp_path / "lake" / "tokenizer.json")
    assert cfg.shards_uri() == "s3://b/shards"
    assert cfg.lake.scratch_uri() == "s3://b/scratch"
    assert cfg.lake.catalog_properties()["uri"] == f"sqlite:///{tmp_path / 'lake' / 'catalog.db'}"


def test_scratch_defaults_under_the_warehouse(tmp_path: Path) -> None:
    cfg = load_config(None, [f"lake.root={tmp_path}"])
    assert cfg.lake.scratch_uri() == f"file://{tmp_path}/warehouse/_scratch"
    s3 = load_config(None, ["lake.warehouse=s3://bucket/wh/"])
    assert s3.lake.scratch_uri() == "s3://bucket/wh/_scratch"


def test_catalog_settings_without_a_uri_keep_the_sqlite_default(tmp_path: Path) -> None:
    cfg = load_config(None, [f"lake.root={tmp_path}", "lake.catalog={warehouse: 's3://bucket/wh'}"])
    props = cfg.lake.catalog_properties()
    assert props["type"] == "sql" and props["uri"] == f"sqlite:///{tmp_path}/catalog.db"
    assert props["warehouse"] == "s3://bucket/wh"
    rest = load_config(None, ["lake.catalog={type: rest, uri: 'http://cat:8181'}"]).lake.catalog_properties()
    assert rest["type"] == "rest" and rest["uri"] == "http://cat:8181"


@pytest.mark.parametrize(("uri", "masked"), [
    ("postgresql+psycopg2://tm:tm@db:5432/catalog", "postgresql+psycopg2://tm:***@db:5432/catalog"),
    ("https://user:p%40ss:word@host/x", "https://user:***@host/x"),
    ("http://user@host:8181/api", "http://user@host:8181/api"),
    ("s3://bucket/key:with:colons", "s3://bucket/key:with:colons"),
    ("sqlite:////tmp/catalog.db", "sqlite:////tmp/catalog.db"),
])
def test_mask_uri(uri: str, masked: str) -> None:
    assert mask_uri(uri) == masked


def test_masked_properties_hide_secret_values() -> None:
    props = {"uri": "postgresql://a:b@h/c", "s3.secret-access-key": "xyz", "s3.endpoint": "http://h:9000",
             "token": "t0k"}
    assert masked_properties(props) == {"uri": "postgresql://a:***@h/c", "s3.secret-access-key": "***",
                                        "s3.endpoint": "http://h:9000", "token": "***"}


def test_cli_summary_never_prints_the_catalog_password(capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TM_TEST_CATALOG_URI", "postgresql+psycopg2://tm:hunter2@db:5432/cat")
    cfg = load_config(None, ["lake.catalog={uri: '${env:TM_TEST_CATALOG_URI}'}"])
    print_reports([StageReport(stage="ingest", counts={"raw_docs": 1})], cfg)
    out = capsys.readouterr().out
    assert "postgresql+psycopg2://tm:***@db:5432/cat" in out
    assert "hunter2" not in out
