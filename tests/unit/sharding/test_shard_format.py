"""The shard format kernels: ustar members byte-identical to tarfile's, sizes that count headers/padding."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sharding.format.tar import (
    END_OF_ARCHIVE,
    INDEX_DTYPE,
    encode_sample,
    index_bytes,
    member_bytes,
    read_index,
    sample_json,
    sample_key,
    sample_nbytes,
    ustar_header,
)


def tarfile_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode, info.uname, info.gname = len(data), 0, 0o644, "", ""
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@given(st.binary(max_size=3000), st.binary(max_size=700), st.integers(0, 10**12 - 1))
def test_sample_members_match_tarfile_and_planned_size(tokens: bytes, meta: bytes, index: int) -> None:
    key = sample_key(index)
    ours = encode_sample(index, tokens, meta)
    ref = tarfile_bytes([(f"{key}.tokens", tokens), (f"{key}.json", meta)])
    assert ref.startswith(ours + END_OF_ARCHIVE)
    assert set(ref[len(ours) :]) <= {0}
    assert len(ours) == sample_nbytes(np.array([len(tokens)]), np.array([len(meta)]))[0]


def test_tarfile_reads_back_members_with_fixed_attributes() -> None:
    blob = encode_sample(7, b"\x01\x00\x02\x00", b'{"a":1}') + END_OF_ARCHIVE
    with tarfile.open(fileobj=io.BytesIO(blob)) as tf:
        members = tf.getmembers()
        assert [m.name for m in members] == ["000000000007.tokens", "000000000007.json"]
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o644)}
        assert tf.extractfile(members[0]).read() == b"\x01\x00\x02\x00"


def test_sample_key_and_header_reject_bad_values() -> None:
    assert sample_key(42) == "000000000042"
    with pytest.raises(ValueError, match="-1"):
        sample_key(-1)
    with pytest.raises(ValueError, match="1000000000000"):
        sample_key(10**12)
    with pytest.raises(ValueError, match="ASCII"):
        ustar_header("x" * 101, 1)
    with pytest.raises(ValueError, match="ASCII"):
        ustar_header("é.json", 1)
    with pytest.raises(ValueError, match="size"):
        ustar_header("a", 8**11)
    assert len(member_bytes("a", b"")) == 512


def test_sample_json_is_canonical_utf8() -> None:
    assert sample_json("dé", 2, None) == '{"doc_id":"dé","n_tokens":2,"source":null}'.encode()


def test_index_round_trips_without_pickle_and_rejects_other_arrays() -> None:
    idx = np.array([(1024, 3, 2048, 40)], dtype=INDEX_DTYPE)
    data = index_bytes(idx)
    assert index_bytes(idx) == data
    back = read_index(data)
    assert back.tolist() == [(1024, 3, 2048, 40)]
    with pytest.raises(ValueError, match="dtype"):
        index_bytes(np.zeros(2, dtype=np.int64))
    buf = io.BytesIO()
    np.save(buf, np.zeros(2))
    with pytest.raises(ValueError, match="not a shard index"):
        read_index(buf.getvalue())
