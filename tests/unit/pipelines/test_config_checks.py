"""Config errors found before Spark starts, each one line naming the key, and exit code 2 from the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import cli
from pipelines.config import load_config
from pipelines.errors import ConfigError


@pytest.mark.parametrize(("overrides", "message"), [
    (["shard.target_bytes=[unclosed"], r"--set shard.target_bytes: value '\[unclosed' is not valid YAML"),
    (["sources={a: b"], r"--set sources: value .* is not valid YAML"),
    (["shard.target_bytes=1e20"], r"'shard.target_bytes'"),
    (["shard.target_bytes=100000000000000000000"], r"'shard.target_bytes'"),
    (["curate.dedup.bands=0"], r"'curate.dedup.bands'"),
    (["curate.dedup.rows=-1"], r"'curate.dedup.rows'"),
])
def test_bad_values_are_config_errors_naming_the_key(overrides: list[str], message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [f"lake.root={tmp_path}", *overrides])


def test_an_empty_config_file_is_refused_not_silently_defaulted(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("# nothing here\n")
    with pytest.raises(ConfigError, match="params.yaml is empty; write `{}`"):
        load_config(params)
    params.write_text("{}\n")
    assert load_config(params).lake.root == str(tmp_path / "lake")  # relative paths resolve against the config file's folder


@pytest.mark.parametrize("key", ["lake.root", "lake.warehouse", "lake.metrics_dir", "shard.output"])
def test_a_folder_setting_pointing_at_a_file_is_refused_up_front(key: str, tmp_path: Path) -> None:
    f = tmp_path / "a-file"
    f.write_text("x")
    with pytest.raises(ConfigError, match=f"{key}: {f} is a file, not a folder"):
        load_config(None, [f"lake.root={tmp_path / 'lake'}", f"{key}={f}"])
    with pytest.raises(ConfigError, match=f"{key}: {f} is a file"):
        load_config(None, [f"lake.root={tmp_path / 'lake'}", f"{key}={f / 'below'}"])


def test_the_cli_exits_2_with_one_line_for_bad_set_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("{}\n")
    code = cli.main(["ingest", "--config", str(params), "--set", "ingest.parallelism=[1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("tokenmill: config error: --set ingest.parallelism: value")
