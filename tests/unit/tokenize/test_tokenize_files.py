"""`tokenize.file_target_bytes`: how many Parquet data files a tokenize task writes, never which tokens."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from pipelines.config import Config
from pipelines.stages.tokenize.encoder import load_spec
from pipelines.stages.tokenize.spark import _tokenize_partition
from pipelines.stages.tokenize.train import save_tokenizer, train_bpe

TEXTS = [f"document {i}: the quick brown fox jumps over the lazy dog " * (1 + i % 3) for i in range(60)]


def _batches() -> list[pa.RecordBatch]:
    rows = {"doc_id": [f"d{i:03d}" for i in range(len(TEXTS))], "text": TEXTS,
            "source_type": ["local"] * len(TEXTS), "source_uri": ["file:///in.jsonl"] * len(TEXTS)}
    table = pa.table(rows)
    return table.to_batches(max_chunksize=10)


def _run(tmp_path: Path, target: int) -> tuple[list[str], pa.Table]:
    tok = save_tokenizer(train_bpe(TEXTS, vocab_size=300, min_frequency=1), tmp_path / "tokenizer.json")
    out = tmp_path / f"files-{target}"
    task = _tokenize_partition(load_spec(tok), bos=False, eos=True, batch_size=16, file_target_bytes=target,
                               directory=out.as_uri(), prefix="tokens")
    result = pa.Table.from_batches(list(task(iter(_batches()))))
    paths = [p for p in result.column("path").to_pylist() if p]
    tokens = pa.concat_tables([pq.read_table(p.removeprefix("file://")) for p in paths])
    return paths, tokens.sort_by("doc_id")


def test_a_small_file_target_splits_a_task_into_more_files_with_the_same_tokens(tmp_path: Path) -> None:
    few, tokens_few = _run(tmp_path, Config().tokenize.file_target_bytes)
    many, tokens_many = _run(tmp_path, 1024)
    assert len(few) == 1
    assert len(many) > 1
    assert tokens_many.num_rows == tokens_few.num_rows == len(TEXTS)
    assert tokens_many.column("tokens").to_pylist() == tokens_few.column("tokens").to_pylist()


def test_file_target_bytes_defaults_to_128_mib_and_must_be_positive() -> None:
    assert Config().tokenize.file_target_bytes == 134217728
    with pytest.raises(ValidationError, match="file_target_bytes"):
        Config.model_validate({"tokenize": {"file_target_bytes": 0}})

