"""The object reader on the malformed-input corpus: every fault becomes a quarantine row with its code, and
every record read is either a document or a quarantine row."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pyarrow as pa
import pytest
from malformed_corpus import MAX_RECORD_BYTES, build_corpus, cases, fault_kinds

from pipelines.sources.config import LocalSource
from pipelines.sources.objects import (
    ObjectRef,
    ReadOptions,
    TransientReadError,
    list_local,
    read_ahead,
    read_object,
)
from pipelines.sources.records import _QUARANTINE_EMPTY as QUARANTINE_EMPTY

OPTS = ReadOptions(max_record_bytes=MAX_RECORD_BYTES, raw_limit=64, batch_rows=16)
RAW_EMPTY = pa.table({"doc_id": pa.array([], pa.large_string())})


def _read(ref: ObjectRef, opts: ReadOptions = OPTS) -> tuple[pa.Table, pa.Table]:
    batches = list(read_object(ref, "local", opts))
    if not batches:
        return RAW_EMPTY, QUARANTINE_EMPTY
    docs, bad = zip(*batches, strict=True)
    return pa.concat_tables(docs), pa.concat_tables(bad)


def test_corpus_has_at_least_fifty_kinds_of_fault() -> None:
    assert len(fault_kinds()) >= 50
    assert len({code for _, code in fault_kinds()}) >= 16


@pytest.mark.parametrize("case", cases(), ids=lambda c: c.name)
def test_each_file_yields_its_documents_and_error_codes(tmp_path: Path, case) -> None:
    (tmp_path / case.name).write_bytes(case.data)
    ref = list_local(LocalSource(path=str(tmp_path / case.name)))[0]
    if not case.data:
        assert list(read_object(ref, "local", OPTS)) == []
        return
    docs, bad = _read(ref)
    assert docs.num_rows == case.docs
    assert tuple(bad.column("error_code").to_pylist()) == case.errors
    for row in bad.to_pylist():
        assert row["source_uri"] == ref.uri
        assert len(row["raw"]) <= 64
        assert row["raw_size"] >= len(row["raw"])
        assert row["error_detail"]


def test_document_ids_and_coordinates(tmp_path: Path) -> None:
    build_corpus(tmp_path)
    docs, _ = _read(list_local(LocalSource(path=str(tmp_path / "bom_crlf_blank.jsonl")))[0])
    uri = f"file://{tmp_path / 'bom_crlf_blank.jsonl'}"
    assert docs.column("doc_id").to_pylist() == [f"{uri}:0", "7"]
    assert docs.column("text").to_pylist() == ["bom", "crlf"]
    assert docs.column("source_offset").to_pylist() == [0, 3]
    txt, _ = _read(list_local(LocalSource(path=str(tmp_path / "doc.txt")))[0])
    assert txt.column("text").to_pylist() == ["one whole document\nwith two lines"]
    assert txt.column("doc_id").to_pylist() == [f"file://{tmp_path / 'doc.txt'}"]


def test_metadata_keeps_other_fields(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    p.write_text('{"id": 3, "text": "t", "title": "T", "tags": ["a"]}\n')
    docs, _ = _read(list_local(LocalSource(path=str(p)))[0])
    assert docs.column("metadata").to_pylist() == ['{"title":"T","tags":["a"]}']
    assert docs.column("doc_id").to_pylist() == ["3"]


def test_default_selection_takes_data_files_only(tmp_path: Path) -> None:
    build_corpus(tmp_path)
    (tmp_path / "README").write_text("about")
    (tmp_path / ".hidden.jsonl").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.jsonl").write_text('{"text": "d"}\n')
    names = {r.uri.rsplit("/", 1)[-1] for r in list_local(LocalSource(path=str(tmp_path)))}
    assert "deep.jsonl" in names and "good.parquet" in names and "truncated.jsonl.zst" in names
    assert not names & {"README", ".hidden.jsonl", "notes.csv", "doc.txt", "huge.txt"}
    globbed = {r.uri.rsplit("/", 1)[-1] for r in list_local(LocalSource(path=str(tmp_path), glob="*.txt"))}
    assert globbed == {"doc.txt", "huge.txt", "bad_utf8.txt"}


def test_object_deleted_after_listing_is_a_transient_error_naming_it(tmp_path: Path) -> None:
    p = tmp_path / "gone.jsonl"
    p.write_text('{"text": "x"}\n')
    ref = list_local(LocalSource(path=str(p)))[0]
    p.unlink()
    with pytest.raises(TransientReadError, match="gone.jsonl: FileNotFoundError"):
        _read(ref)


def test_read_ahead_yields_every_chunk_in_order_and_raises_where_the_read_failed() -> None:
    data = io.BytesIO(bytes(range(256)) * 40)
    assert b"".join(read_ahead(data.read, 100, 2)) == bytes(range(256)) * 40

    calls = []

    def failing(n: int) -> bytes:
        calls.append(n)
        if len(calls) == 3:
            raise FileNotFoundError("gone")
        return b"x" * n

    got = []
    with pytest.raises(FileNotFoundError, match="gone"):
        for chunk in read_ahead(failing, 5, 4):
            got.append(chunk)
    assert got == [b"xxxxx", b"xxxxx"]


def test_closing_read_ahead_early_stops_its_thread() -> None:
    calls = []

    def endless(n: int) -> bytes:
        calls.append(n)
        return b"y" * n

    before = {t.ident for t in threading.enumerate()}
    chunks = read_ahead(endless, 3, 2)
    assert next(chunks) == b"yyy"
    chunks.close()
    assert not [t for t in threading.enumerate() if t.ident not in before and t.name == "tokenmill-read-ahead"]
    n = len(calls)
    assert n <= 5  # the one taken, two queued, at most one waiting to be queued and one more read
    assert len(calls) == n
