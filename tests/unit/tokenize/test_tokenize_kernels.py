"""Tokenizer loading (HF and tiktoken files), the packing kernel and offline BPE training."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from pipelines.errors import MissingDependencyError
from pipelines.stages.tokenize.config import GPT2_PATTERN
from pipelines.stages.tokenize.encoder import (
    Encoder,
    decode_tokens,
    encode_texts,
    load_spec,
    pack_ids,
    parse_tiktoken_ranks,
    token_dtype,
    tokenizer_info,
)
from pipelines.stages.tokenize.train import save_tokenizer, tiktoken_ranks_from_bpe, train_bpe

TEXTS = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "Ünïcödé text, numbers 12345 and symbols #@! survive the round trip.",
    "",
    "short",
    "Line one\nLine two\n\n  indented  with   spaces",
] * 20


@pytest.fixture(scope="module")
def tok_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("tok")
    tok = train_bpe(TEXTS, vocab_size=400, min_frequency=2)
    hf = save_tokenizer(tok, tmp / "tokenizer.json")
    tt = tmp / "ranks.tiktoken"
    tt.write_bytes(tiktoken_ranks_from_bpe(tok))
    return hf, tt


def test_trained_bpe_has_eod_first_and_is_reproducible(tok_files: tuple[Path, Path], tmp_path: Path) -> None:
    hf, _ = tok_files
    again = save_tokenizer(train_bpe(TEXTS, vocab_size=400, min_frequency=2), tmp_path / "t.json")
    assert again.read_bytes() == hf.read_bytes()
    enc = Encoder(load_spec(hf))
    assert enc.eod_id == 0 and enc.vocab_size <= 400
    with pytest.raises(ValueError, match="256"):
        train_bpe(TEXTS, vocab_size=256)


def test_hf_encoding_round_trips_and_ignores_special_token_spelling(tok_files: tuple[Path, Path]) -> None:
    from tokenizers import Tokenizer

    hf, _ = tok_files
    enc = Encoder(load_spec(hf))
    ids = enc.encode_batch(TEXTS[:5])
    decoder = Tokenizer.from_file(str(hf))
    assert [decoder.decode(x) for x in ids] == TEXTS[:5]
    spelled = enc.encode_batch(["a <|endoftext|> b"])[0]
    assert 0 not in spelled and decoder.decode(spelled) == "a <|endoftext|> b"


def test_tiktoken_file_encodes_like_the_bpe_it_came_from(tok_files: tuple[Path, Path]) -> None:
    hf, tt = tok_files
    a = Encoder(load_spec(hf))
    b = Encoder(load_spec(tt, tiktoken_pattern=GPT2_PATTERN, tiktoken_eod_id=0))
    assert load_spec(tt).kind == "tiktoken" and load_spec(hf).kind == "hf"
    assert b.encode_batch(TEXTS) == a.encode_batch(TEXTS)
    assert (b.eod_id, b.vocab_size) == (0, a.vocab_size)
    default_eod = Encoder(load_spec(tt, tiktoken_pattern=GPT2_PATTERN))
    assert default_eod.eod_id == a.vocab_size  # one past the last rank
    with pytest.raises(ValueError, match="collides"):
        Encoder(load_spec(tt, tiktoken_pattern=GPT2_PATTERN, tiktoken_eod_id=5))


def test_identity_is_the_file_hash_and_missing_file_is_named(tok_files: tuple[Path, Path], tmp_path: Path) -> None:
    hf, _ = tok_files
    info = tokenizer_info(Encoder(load_spec(hf)))
    assert info["tokenizer_sha256"] == hashlib.sha256(hf.read_bytes()).hexdigest()
    assert info["token_dtype"] == "uint16" and info["eod_id"] == 0
    with pytest.raises(MissingDependencyError, match="nope.json"):
        load_spec(tmp_path / "nope.json")
    with pytest.raises(ValueError, match="'<|bos|>'"):
        Encoder(load_spec(hf, bos_token="<|bos|>"))


def test_encode_texts_adds_bos_eos_and_packs_little_endian(tok_files: tuple[Path, Path]) -> None:
    hf, _ = tok_files
    enc = Encoder(load_spec(hf))
    plain, n_plain = encode_texts(enc, TEXTS[:5], batch_size=2)
    framed, n_framed = encode_texts(enc, TEXTS[:5], bos=True, eos=True, batch_size=3)
    assert (n_framed == n_plain + 2).all()
    for i in range(5):
        inner = decode_tokens(framed[i].as_py(), "uint16")
        assert inner[0] == 0 and inner[-1] == 0
        assert inner[1:-1].tobytes() == plain[i].as_py()
    assert n_plain[2] == 0 and plain[2].as_py() == b""


def test_pack_ids_dtypes_and_errors() -> None:
    arr, n = pack_ids([[1, 2], [], [70000]], np.dtype("<u4"), eos_id=9)
    assert n.tolist() == [3, 1, 2]
    assert decode_tokens(arr[2].as_py(), "uint32").tolist() == [70000, 9]
    assert arr[0].as_py() == np.array([1, 2, 9], "<u4").tobytes()
    with pytest.raises(ValueError, match="70000"):
        pack_ids([[70000]], np.dtype("<u2"))
    with pytest.raises(ValueError, match="-1"):
        pack_ids([[-1]], np.dtype("<u2"))
    with pytest.raises(ValueError, match="int8"):
        pack_ids([[1]], np.dtype("i1"))
    assert token_dtype(65536) == np.dtype("<u2") and token_dtype(65537) == np.dtype("<u4")
    with pytest.raises(ValueError, match="0"):
        token_dtype(0)
    with pytest.raises(ValueError, match="3 bytes"):
        decode_tokens(b"abc", "uint16")


def test_tiktoken_ranks_parser_names_bad_lines() -> None:
    assert parse_tiktoken_ranks(b"YQ== 0\nYg== 1\n") == {b"a": 0, b"b": 1}
    with pytest.raises(ValueError, match="line 2"):
        parse_tiktoken_ranks(b"YQ== 0\nnot-a-line\n")
    with pytest.raises(ValueError, match="no ranks"):
        parse_tiktoken_ranks(b"\n")
