"""Poison input (issue 17): a fault stays with its object or record, what decoded before it is kept, memory
stays bounded, a store error defers the object instead of recording it as ingested."""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import pyarrow as pa
import pytest
import zstandard
from malformed_corpus import _lines

from pipelines.sources import objects, tasks
from pipelines.sources.config import LocalSource
from pipelines.sources.formats import OUT_CHUNK, FormatError, decompress
from pipelines.sources.objects import ReadOptions, list_local, read_object
from pipelines.sources.plan import Plan, settle
from pipelines.sources.state import IngestState
from pipelines.sources.units import ObjectUnit, Unit

OPTS = ReadOptions(max_record_bytes=4096, raw_limit=64, batch_rows=16)


def _read(path: Path, opts: ReadOptions = OPTS) -> tuple[pa.Table, pa.Table]:
    docs, bad = zip(*read_object(list_local(LocalSource(path=str(path)))[0], "local", opts), strict=True)
    return pa.concat_tables(docs), pa.concat_tables(bad)


def test_records_before_a_compression_fault_are_kept_and_the_fault_names_its_byte_offset(tmp_path: Path) -> None:
    first = zstandard.ZstdCompressor().compress(_lines(1000))
    p = tmp_path / "cut.jsonl.zst"
    p.write_bytes(first + zstandard.ZstdCompressor().compress(_lines(1000, 1000))[:40])
    docs, bad = _read(p)
    assert docs.num_rows == 1000
    assert docs.column("doc_id").to_pylist()[-1] == "l999"
    (row,) = bad.to_pylist()
    assert row["error_code"] == "truncated_compression"
    assert row["source_offset"] == 1000
    assert f"at compressed byte {len(first) + 40}" in row["error_detail"]


def test_gzip_zero_padding_is_tolerated_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = tmp_path / "padded.jsonl.gz"
    member = gzip.compress(_lines(100))
    p.write_bytes(member + b"\0" * 4096)
    with caplog.at_level(logging.WARNING, logger="pipelines.sources.objects"):
        docs, bad = _read(p)
    assert (docs.num_rows, bad.num_rows) == (100, 0)
    assert f"4096 bytes after the last complete member, at compressed byte {len(member)}" in caplog.text


def test_a_decompression_bomb_streams_in_bounded_pieces_and_stops_at_the_limit() -> None:
    z = zstandard.ZstdCompressor(level=19).compressobj()
    bomb = b"".join(z.compress(b"\0" * (1 << 20)) for _ in range(256)) + z.flush()
    assert len(bomb) < 64 << 10
    largest, total = 0, 0
    with pytest.raises(FormatError) as err:
        for piece in decompress([bomb], "zstd", max_output=128 << 20):
            largest, total = max(largest, len(piece)), total + len(piece)
    assert err.value.code == "expansion_limit"
    assert total <= 128 << 20
    assert largest <= 2 * OUT_CHUNK


def test_any_exception_while_decoding_an_object_is_one_row_after_the_rows_before_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "x.jsonl"
    p.write_bytes(_lines(40))
    real = objects._jsonl_batch
    calls = []

    def second_batch_fails(first, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(first)
        if len(calls) == 2:
            raise RuntimeError("boom inside the decoder")
        return real(first, *args, **kwargs)

    monkeypatch.setattr(objects, "_jsonl_batch", second_batch_fails)
    docs, bad = _read(p)
    assert docs.num_rows == 16
    (row,) = bad.to_pylist()
    assert (row["error_code"], row["source_offset"]) == ("read_error", 16)
    assert row["error_detail"] == "RuntimeError: boom inside the decoder"


def _ctx(tmp_path: Path, src: LocalSource) -> tasks.TaskContext:
    from datetime import UTC, datetime
    return tasks.TaskContext(sources=(src,), run_id="r" * 32, ingested_at=datetime.now(UTC),
                             raw_dir=f"file://{tmp_path / 'raw'}", quarantine_dir=f"file://{tmp_path / 'q'}",
                             max_record_bytes=4096, raw_limit=64, file_bytes=1 << 20)


def test_an_object_missing_at_read_time_is_retried_then_left_for_the_next_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "READ_RETRY_DELAY_S", 0.0)
    data = tmp_path / "in"
    data.mkdir()
    (data / "a.jsonl").write_bytes(_lines(5))
    (data / "b.jsonl").write_bytes(_lines(7))
    src = LocalSource(path=str(data))
    refs = list_local(src)
    (data / "b.jsonl").rename(tmp_path / "moved.jsonl")
    units: list[Unit] = [ObjectUnit(source=0, uri=r.uri, size=r.size, etag=r.etag, path=r.path) for r in refs]
    results = [tasks.run_unit(u, _ctx(tmp_path, src)) for u in units]
    assert [bool(r.deferred) for r in results] == [False, True]
    assert results[1].raw_files == results[1].quarantine_files == []
    out = settle(Plan(units=units), results, [src], IngestState(), "run1")
    assert set(out.state.ledger) == {refs[0].uri}
    assert out.counts["objects_deferred"] == 1
    assert out.counts["records_read"] == out.counts["raw_docs"] == 5


def test_symlinked_folders_are_followed_once_and_loops_cut(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir()
    (real / "r.jsonl").write_bytes(_lines(1))
    base = tmp_path / "src"
    (base / "sub").mkdir(parents=True)
    (base / "sub" / "s.jsonl").write_bytes(_lines(1))
    os.symlink(real, base / "linked")
    os.symlink(base, base / "sub" / "loop")
    with caplog.at_level(logging.WARNING):
        names = [r.uri.removeprefix(f"file://{base}/") for r in list_local(LocalSource(path=str(base), glob="**/*.jsonl"))]
    assert names == ["linked/r.jsonl", "sub/s.jsonl"]
    assert "symlink loop" in caplog.text
    plain = list_local(LocalSource(path=str(base), follow_symlinks=False))
    assert [r.uri.rsplit("/", 1)[-1] for r in plain] == ["s.jsonl"]


def test_a_file_name_that_is_not_utf8_is_read_and_its_bytes_shown(tmp_path: Path) -> None:
    name = os.fsencode(str(tmp_path)) + b"/caf\xe9.jsonl"
    with open(name, "wb") as f:
        f.write(_lines(3))
    (ref,) = list_local(LocalSource(path=str(tmp_path)))
    assert ref.uri == f"file://{tmp_path}/caf\\xe9.jsonl"
    docs, bad = zip(*read_object(ref, "local", OPTS), strict=True)
    assert pa.concat_tables(docs).column("source_uri").to_pylist() == [ref.uri] * 3
    assert sum(b.num_rows for b in bad) == 0


def test_an_empty_id_counts_as_missing(tmp_path: Path) -> None:
    p = tmp_path / "ids.jsonl"
    p.write_bytes(b'{"id": "", "text": "a"}\n{"id": 7, "text": "b"}\n')
    docs, _ = _read(p)
    assert docs.column("doc_id").to_pylist() == [f"file://{p}:0", "7"]
