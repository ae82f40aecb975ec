"""Version names: odd names are refused (a final newline too), dotted names round-trip through the record and
the pins, and the pseudo-version `current` cannot be deleted."""

from __future__ import annotations

import pytest
from versions_checks import _pinned_files_match_manifest

from pipelines.config import Config
from pipelines.errors import VersionError
from pipelines.ops.versions import (
    check_name,
    create_version,
    delete_version,
    list_versions,
    record_path,
    resolve_version,
    versions_dir,
)


@pytest.mark.parametrize("name", ["", "current", "-v1", ".v1", "v/1", "../v1", "v 1", "v1/..", "vé", "a" * 129,
                                  "v1\x00", "v1:2"])
def test_odd_names_are_refused(name: str) -> None:
    with pytest.raises(VersionError, match="bad version name"):
        check_name(name)


@pytest.mark.parametrize("name", ["v1", "V1.2-rc_3", "2026.11.22", "a" * 128, "v1.json", "current2"])
def test_names_with_dots_dashes_and_underscores_are_accepted(name: str) -> None:
    assert check_name(name) == name


def test_dotted_name_round_trips_through_record_and_pins(lake_config: Config, lake_builder, first_docs) -> None:
    lake_builder(lake_config, first_docs)
    info = create_version(lake_config, "v1.2-rc_3")
    assert record_path(lake_config, "v1.2-rc_3").name == "v1.2-rc_3.json"
    assert [v.name for v in list_versions(lake_config)] == ["v1.2-rc_3"]
    assert resolve_version(lake_config, "v1.2-rc_3").snapshots == info.snapshots
    assert not list(versions_dir(lake_config).glob("*.tmp"))
    _pinned_files_match_manifest(info)


def test_a_name_with_a_final_newline_is_refused() -> None:
    with pytest.raises(VersionError, match="bad version name"):
        check_name("v1\n")


def test_current_cannot_be_deleted(cli, lake_config: Config, lake_builder, first_docs) -> None:
    lake_builder(lake_config, first_docs)
    with pytest.raises(VersionError, match="bad version name"):
        delete_version(lake_config, "current")
    assert cli("version", "delete", "current") == 6
