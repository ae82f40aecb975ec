"""Config loading, validation and --set overrides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.config import apply_override, load_config
from pipelines.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def test_defaults_give_the_embedded_setup(tmp_path: Path) -> None:
    cfg = load_config(None, [f"lake.root={tmp_path}"])
    props = cfg.lake.catalog_properties()
    assert props["type"] == "sql"
    assert props["uri"] == f"sqlite:///{tmp_path}/catalog.db"
    assert props["warehouse"] == f"file://{tmp_path}/warehouse"
    assert cfg.shards_uri() == str(tmp_path / "shards")
    assert cfg.shard.target_bytes == 134217728
    assert cfg.spark.master == "local[*]"


def test_repo_params_yaml_is_valid() -> None:
    cfg = load_config(REPO / "params.yaml")
    assert cfg.sources and cfg.sources[0].type == "local"
    assert cfg.tokenize.tokenizer.endswith("tokenizer.json")


def test_set_parses_values_as_yaml() -> None:
    cfg = load_config(None, ["shard.target_bytes=1048576", "sources=[{type: kafka, bootstrap: 'h:9092', topics: [a]}]",
                             "curate.dedup.verify=false"])
    assert cfg.shard.target_bytes == 1048576
    assert cfg.sources[0].type == "kafka" and cfg.sources[0].topics == ["a"]
    assert cfg.curate.dedup.verify == "none"  # false: candidate edges unfiltered (YAML bool accepted)


def test_override_into_list_items(tmp_path: Path) -> None:
    data = {"sources": [{"type": "local", "path": "a"}]}
    apply_override(data, "sources.0.path=b")
    assert data["sources"][0]["path"] == "b"
    with pytest.raises(ConfigError, match="no list item '3'"):
        apply_override(data, "sources.3.path=b")


@pytest.mark.parametrize(
    ("override", "named"),
    [("shard.bogus=1", "shard.bogus"), ("shard.target_bytes=abc", "shard.target_bytes"),
     ("curate.dedup.threshold=1.5", "curate.dedup.threshold"), ("nonsense=1", "nonsense"),
     ("sources=[{type: ftp}]", "sources.0")],
)
def test_bad_key_or_value_names_it(override: str, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert named in str(info.value)


def test_params_hash_changes_with_params_but_not_secrets() -> None:
    base = load_config(None, ["sources=[{type: kafka, bootstrap: 'h:1', topics: [t]}]"])
    secret = load_config(None, ["sources=[{type: kafka, bootstrap: 'h:1', topics: [t], client: {sasl_plain_password: '${env:X}'}}]"])
    other = load_config(None, ["sources=[{type: kafka, bootstrap: 'h:1', topics: [u]}]"])
    assert base.params_hash() == secret.params_hash()
    assert base.params_hash() != other.params_hash()


def test_dedup_execution_settings_are_in_neither_hash_but_what_dedup_decides_is() -> None:
    from pipelines.stages.curate.mode import stage_params

    base = load_config(None)
    tuned = load_config(None, ["curate.dedup.driver_max_bytes=0", "curate.dedup.single_task_max_bytes=1024",
                               "curate.dedup.driver_components_max_edges=0", "curate.dedup.max_iterations=5",
                               "curate.dedup.checkpoint_every=9"])
    assert (tuned.params_hash(), stage_params(tuned)) == (base.params_hash(), stage_params(base))
    for decides in ("curate.dedup.threshold=0.7", "curate.dedup.max_cluster=50", "curate.dedup.keep=[doc_id]"):
        other = load_config(None, [decides])
        assert other.params_hash() != base.params_hash() and stage_params(other) != stage_params(base), decides
    forced = load_config(None, ["curate.dedup.incremental=true"])  # the mode: no rebuild, but a recorded setting
    assert stage_params(forced) == stage_params(base) and forced.params_hash() != base.params_hash()


def test_curate_steps_survive_a_budget_change_but_not_a_decision_change(tmp_path: Path) -> None:
    from pipelines.stages.curate.steps import steps_dir

    def folder(*overrides: str) -> str:
        return steps_dir(load_config(None, [f"lake.root={tmp_path}", *overrides]), 7)

    base = folder()
    assert folder("curate.dedup.driver_max_bytes=0", "curate.dedup.single_task_max_bytes=1024") == base
    assert folder("curate.dedup.threshold=0.7") != base
    assert folder("curate.dedup.threshold=0.7") != steps_dir(
        load_config(None, [f"lake.root={tmp_path}", "curate.dedup.threshold=0.7"]), 8)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("command", ["ingest", "run", "audit", "demo"])
def test_cli_bad_config_exits_2_with_one_line(tmp_path: Path, command: str) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("lake:\n  root: x\ncurate:\n  dedupe: {}\n")
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", command, "--config", str(bad)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "curate.dedupe" in lines[0]


def test_cli_bad_set_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "curate", "--set", "shard.target_bytes=-5"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "shard.target_bytes" in proc.stderr


def test_cli_help_everywhere() -> None:
    for command in ("run", "ingest", "curate", "tokenize", "shard", "audit", "demo", "train-tokenizer"):
        proc = subprocess.run([sys.executable, "-m", "pipelines.cli", command, "--help"], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0 and "--config" in proc.stdout and "--set" in proc.stdout


def test_missing_java_is_one_clear_line(tmp_path: Path) -> None:
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "ingest", "--set", f"lake.root={tmp_path}"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Java 17" in lines[0]
