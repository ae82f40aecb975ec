"""Exit codes of the version, lineage and monitor commands for bad input, and a --strict create that fails
with 7 and leaves nothing behind."""

from __future__ import annotations

import json

from versions_checks import _tags

from pipelines.config import Config
from pipelines.ops.versions import (
    record_path,
    versions_dir,
)


def test_cli_exit_codes_for_bad_input(cli, lake_config: Config, lake_builder, first_docs, capsys) -> None:
    lake_builder(lake_config, first_docs)
    assert cli("version", "create", "bad name") == 6
    assert cli("version", "create", "current") == 6
    assert cli("version", "create", "v1") == 0
    assert cli("version", "create", "v1") == 6  # taken
    assert cli("version", "delete", "v2") == 6
    assert cli("version", "diff", "v1", "v2") == 6
    assert cli("version", "show", "current", "--json") == 0
    assert cli("monitor", "--against", "v9") == 6
    assert cli("monitor", "--version", "v9", "--strict") == 6
    assert cli("lineage", "--shard", "shard-000000.tar") == 8
    assert cli("lineage") == 8
    assert cli("lineage", "d1", "--version", "v9") == 6
    assert cli("lineage", "--shard", "9", "--member", "0") == 8
    assert cli("lineage", "--shard", "0", "--member", "000000000003") == 8  # key 3 is in shard 1
    assert cli("lineage", "--shard", "shard-000001", "--member", "3.tokens") == 0
    capsys.readouterr()
    assert cli("lineage", "--shard", "1", "--member", "000000000004", "--json") == 0
    assert json.loads(capsys.readouterr().out)["doc_id"] == "d7"


def test_strict_create_exits_7_and_leaves_nothing_behind(cli, lake_config: Config, lake_builder, first_docs,
                                                         capsys) -> None:
    lake_builder(lake_config, first_docs)
    assert cli("version", "create", "v1") == 0
    lake_builder(lake_config, first_docs[:2])
    assert cli("version", "create", "v2", "--strict") == 7
    assert _tags(lake_config, "v2") == {} and not (versions_dir(lake_config) / "v2").exists()
    assert not record_path(lake_config, "v2").exists()
    assert cli("monitor", "--version", "current", "--against", "v1", "--strict") == 7
    assert cli("monitor", "--version", "current", "--against", "v1") == 0
