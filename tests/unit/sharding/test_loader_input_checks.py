"""Loader input checks (issue 17): token ids against vocab_size, member names and order, manifest bounds."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
from loader_shard_fixture import write_shards

from sharding import ManifestError
from sharding.format import index_matrix, read_index
from sharding.format.model import MAX_MANIFEST_BYTES, parse_manifest, read_manifest
from sharding.loader.verify import check_tar_layout, check_token_ids


def _shard(out: Path, docs: list[np.ndarray], dtype: str = "uint32") -> tuple[np.ndarray, np.ndarray]:
    write_shards(out, docs, docs_per_shard=len(docs), token_dtype=dtype)
    buf = np.fromfile(out / "shard-000000.tar", dtype=np.uint8)
    return buf, index_matrix(read_index((out / "shard-000000.idx.npy").read_bytes()))


@pytest.mark.parametrize("dtype", ["uint16", "uint32"])
def test_token_ids_at_or_above_vocab_size_are_found_in_any_sample(tmp_path: Path, dtype: str) -> None:
    docs = [np.array([1, 2, 3]), np.array([], dtype=np.int64), np.array([5, 999, 7]), np.array([4])]
    buf, index = _shard(tmp_path, docs, dtype)
    assert check_tar_layout(buf, index, np.dtype(dtype).itemsize) is None
    assert check_token_ids(buf, index, np.dtype(dtype), 1000) is None
    assert check_token_ids(buf, index, np.dtype(dtype), 999) == "sample 2: token id 999 >= vocab_size 999"
    last = _shard(tmp_path / "last", [np.array([1]), np.array([3, 60000])], dtype)
    assert check_token_ids(*last, np.dtype(dtype), 50000) == "sample 1: token id 60000 >= vocab_size 50000"


def _rename(tar_path: Path, old: str, new: str) -> np.ndarray:
    """The shard's bytes with member `old` renamed to `new` (same length class: one header block)."""
    out = tar_path.with_suffix(".renamed.tar")
    with tarfile.open(tar_path) as src, tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as dst:
        for info in src.getmembers():
            data = src.extractfile(info)
            if info.name == old:
                info.name = new
            dst.addfile(info, data)
    return np.fromfile(out, dtype=np.uint8)


@pytest.mark.parametrize(("old", "new", "member"), [
    ("000000000001.json", "000000000001.pickle", 3),
    ("000000000001.tokens", "000000000001.pyd", 2),
    ("000000000001.json", "000000000007.json", 3),
    ("000000000000.tokens", "0000000000xx.tokens", 0),
])
def test_member_names_must_be_the_writer_s(tmp_path: Path, old: str, new: str, member: int) -> None:
    buf, index = _shard(tmp_path, [np.array([1, 2]), np.array([3])])
    bad = _rename(tmp_path / "shard-000000.tar", old, new)
    assert len(bad) == len(buf)
    problem = check_tar_layout(bad, index, 4)
    assert problem is not None and problem.startswith(f"member {member}: member name {new!r} is not")


def test_a_manifest_nested_100k_deep_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError, match="nested too deep"):
        parse_manifest(b"[" * 100_000 + b"]" * 100_000, "deep.json")


def test_a_manifest_over_the_size_bound_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    with path.open("wb") as f:
        f.write(b'{"pad": "')
        f.seek(MAX_MANIFEST_BYTES + 16)
        f.write(b'"}')
    with pytest.raises(ManifestError, match=f"over the {MAX_MANIFEST_BYTES} a manifest may have"):
        read_manifest(str(path))
