"""TokenLoader on a dataset version made by `create_version`, for every pin mode: the version name goes
through `manifest_resolver` (whatever form its manifest URI takes, `file://` included) and the loader
serves the tokens the version holds, also after the shard folder is rewritten (pinned modes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.config import Config
from pipelines.ops.versions import PinMode, create_version, manifest_resolver
from sharding import TokenLoader


def _windows(source: str, **kw: object) -> np.ndarray:
    loader = TokenLoader(source, seq_len=16, batch_size=2, seed=3, rank=0, world_size=1, **kw)  # type: ignore[arg-type]
    return np.concatenate([batch["input_ids"].numpy() for batch in loader])


@pytest.mark.parametrize("pin", ["link", "copy", "none"])
def test_loader_reads_a_version_by_name_for_every_pin_mode(lake_config: Config, lake_builder, first_docs,
                                                           pin: PinMode) -> None:
    lake_builder(lake_config, first_docs)
    direct = _windows(str(Path(lake_config.shards_uri()) / "manifest.json"))
    info = create_version(lake_config, "v1", pin=pin)
    assert info.manifest_uri is not None and info.manifest_uri.startswith("file://")
    by_name = _windows("v1", resolver=manifest_resolver(lake_config))
    assert by_name.shape == direct.shape and by_name.shape[0] > 0
    assert np.array_equal(by_name, direct)
    assert np.array_equal(_windows(info.manifest_uri), direct)  # the file:// URI itself is a source too


@pytest.mark.parametrize("pin", ["link", "copy"])
def test_a_pinned_version_still_loads_its_tokens_after_the_folder_is_rewritten(
    lake_config: Config, lake_builder, first_docs, second_docs, pin: PinMode
) -> None:
    lake_builder(lake_config, first_docs)
    create_version(lake_config, "v1", pin=pin)
    before = _windows("v1", resolver=manifest_resolver(lake_config))
    lake_builder(lake_config, second_docs)
    assert not np.array_equal(_windows(str(Path(lake_config.shards_uri()))), before)
    assert np.array_equal(_windows("v1", resolver=manifest_resolver(lake_config)), before)


def test_a_version_name_without_a_resolver_is_one_clear_error_even_in_a_project_folder(
    lake_config: Config, lake_builder, first_docs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake_builder(lake_config, first_docs)
    create_version(lake_config, "v1")
    (tmp_path / "params.yaml").write_text(f"lake:\n  root: {lake_config.lake.root}\n")
    monkeypatch.chdir(tmp_path)  # the loader never reads params.yaml by itself
    with pytest.raises(ValueError, match=r"pass a resolver, e.g. resolver=pipelines.ops.versions.manifest_resolver"):
        TokenLoader("v1", seq_len=16, batch_size=2, rank=0, world_size=1)
    assert _windows("v1", resolver=manifest_resolver("params.yaml")).shape[0] > 0
