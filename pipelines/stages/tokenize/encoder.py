"""Tokenizers from a file (HF `tokenizer.json` or a tiktoken BPE ranks file) and the batch encode kernel.

A tokenizer travels to Spark tasks as a `TokenizerSpec`: the file's bytes plus the policy (EOD/BOS tokens,
tiktoken pattern), so executors need no shared filesystem. Its identity is the sha256 of the file's bytes.
Token ids are stored as little-endian uint16 when every id fits (vocab_size <= 65536), else uint32.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from pipelines.errors import MissingDependencyError
from pipelines.storage import local_path
from sharding.format.manifest import TOKEN_DTYPES

log = logging.getLogger(__name__)

UINT16_VOCAB_LIMIT = 1 << 16


@dataclass(frozen=True)
class TokenizerSpec:
    """Everything a task needs to rebuild the tokenizer: the file's bytes and the special-token policy."""

    kind: Literal["hf", "tiktoken"]
    data: bytes
    sha256: str
    eod_token: str = "<|endoftext|>"
    bos_token: str | None = None
    tiktoken_pattern: str = ""
    tiktoken_eod_id: int | None = None


def file_sha256(data: bytes) -> str:
    """Hex sha256 of a tokenizer file's bytes: the tokenizer's identity in tables and manifests."""
    return hashlib.sha256(data).hexdigest()


def detect_kind(data: bytes) -> Literal["hf", "tiktoken"]:
    """'hf' when the bytes are a JSON object, else 'tiktoken' (lines of `base64-token rank`)."""
    head = data.lstrip()[:1]
    return "hf" if head == b"{" else "tiktoken"


def load_spec(
    path: str | Path,
    *,
    kind: Literal["auto", "hf", "tiktoken"] = "auto",
    eod_token: str = "<|endoftext|>",
    bos_token: str | None = None,
    tiktoken_pattern: str = "",
    tiktoken_eod_id: int | None = None,
) -> TokenizerSpec:
    """Read the tokenizer file at `path` into a spec; MissingDependencyError when the file does not exist."""
    p = Path(local_path(path))
    if not p.is_file():
        raise MissingDependencyError(
            f"tokenizer file not found: {p} (set tokenize.tokenizer, or run `tokenmill train-tokenizer`)"
        )
    data = p.read_bytes()
    resolved = detect_kind(data) if kind == "auto" else kind
    return TokenizerSpec(
        kind=resolved, data=data, sha256=file_sha256(data), eod_token=eod_token, bos_token=bos_token,
        tiktoken_pattern=tiktoken_pattern, tiktoken_eod_id=tiktoken_eod_id,
    )


def token_dtype(vocab_size: int) -> np.dtype:
    """Little-endian uint16 when all ids (< vocab_size) fit in 16 bits, else uint32.

    >>> token_dtype(65536).str, token_dtype(65537).str
    ('<u2', '<u4')
    """
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    if vocab_size > 1 << 32:
        raise ValueError(f"vocab_size {vocab_size} does not fit uint32 token ids")
    return TOKEN_DTYPES["uint16"] if vocab_size <= UINT16_VOCAB_LIMIT else TOKEN_DTYPES["uint32"]


def parse_tiktoken_ranks(data: bytes) -> dict[bytes, int]:
    """Parse a tiktoken BPE file (one `base64(token) rank` per line); ValueError naming the bad line."""
    ranks: dict[bytes, int] = {}
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"tiktoken file line {lineno}: expected 'base64 rank', got {line[:60]!r}")
        try:
            ranks[base64.b64decode(parts[0], validate=True)] = int(parts[1])
        except (ValueError, base64.binascii.Error) as exc:  # type: ignore[attr-defined]
            raise ValueError(f"tiktoken file line {lineno}: {exc}") from None
    if not ranks:
        raise ValueError("tiktoken file has no ranks")
    return ranks


class Encoder:
    """A loaded tokenizer: `encode_batch(texts) -> list[list[int]]` without special tokens, plus the ids
    of the EOD/BOS tokens and `vocab_size` (one past the largest id it can produce)."""

    def __init__(self, spec: TokenizerSpec, *, threads: int = 1) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.spec = spec
        self.threads = threads
        bos_token = spec.bos_token or spec.eod_token
        if spec.kind == "hf":
            self._init_hf(spec, bos_token)
        else:
            self._init_tiktoken(spec, bos_token)
        self.dtype = token_dtype(self.vocab_size)

    def _init_hf(self, spec: TokenizerSpec, bos_token: str) -> None:
        from tokenizers import Tokenizer

        if self.threads == 1:
            # One Spark task per core: the tokenizer's own thread pool would oversubscribe the cores.
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
        try:
            tok = Tokenizer.from_str(spec.data.decode("utf-8"))
        except Exception as exc:  # the Rust side raises a bare Exception
            raise ValueError(f"not a valid tokenizer.json: {exc}") from None
        # Text that spells a special token is text, not a document boundary.
        tok.encode_special_tokens = True
        vocab = tok.get_vocab(with_added_tokens=True)
        self.vocab_size = max(vocab.values()) + 1
        self.eod_id = _required_id(vocab.get(spec.eod_token), spec.eod_token)
        self.bos_id = _required_id(vocab.get(bos_token), bos_token)
        self._hf = tok

    def _init_tiktoken(self, spec: TokenizerSpec, bos_token: str) -> None:
        try:
            import tiktoken
        except ImportError:
            raise MissingDependencyError("a tiktoken tokenizer file needs the 'tiktoken' package") from None
        ranks = parse_tiktoken_ranks(spec.data)
        next_id = max(ranks.values()) + 1
        eod_id = spec.tiktoken_eod_id if spec.tiktoken_eod_id is not None else next_id
        special = {spec.eod_token: eod_id}
        if bos_token != spec.eod_token:
            special[bos_token] = max(eod_id, next_id) + 1
        if set(special.values()) & set(ranks.values()):
            raise ValueError(f"tiktoken_eod_id {eod_id} collides with a rank in the file")
        self._tt = tiktoken.Encoding(
            name=f"tokenmill-{spec.sha256[:12]}", pat_str=spec.tiktoken_pattern,
            mergeable_ranks=ranks, special_tokens=special,
        )
        self.vocab_size = max(max(special.values()) + 1, next_id)
        self.eod_id = special[spec.eod_token]
        self.bos_id = special[bos_token]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, no special tokens added; special-token spellings are encoded as text."""
        if self.spec.kind == "hf":
            return [e.ids for e in self._hf.encode_batch_fast(list(texts), add_special_tokens=False)]
        if self.threads > 1:
            return self._tt.encode_ordinary_batch(list(texts), num_threads=self.threads)
        return [self._tt.encode_ordinary(t) for t in texts]


def _required_id(token_id: int | None, token: str) -> int:
    if token_id is None:
        raise ValueError(f"special token {token!r} is not in the tokenizer's vocabulary")
    return int(token_id)


@lru_cache(maxsize=4)
def cached_encoder(spec: TokenizerSpec, threads: int = 1) -> Encoder:
    """One Encoder per spec per process (Python workers are reused across Spark tasks)."""
    return Encoder(spec, threads=threads)


def pack_ids(
    ids: Sequence[Sequence[int]], dtype: np.dtype, *, bos_id: int | None = None, eos_id: int | None = None
) -> tuple[pa.LargeBinaryArray, np.ndarray]:
    """Pack per-document id lists into one large_binary array of little-endian `dtype` ids.

    With `bos_id`/`eos_id`, that id is put before/after every document. Returns the array and the int32
    token count of each document (specials included). Raises ValueError when an id does not fit `dtype`
    or is negative.
    """
    dtype = np.dtype(dtype)
    if dtype not in TOKEN_DTYPES.values():
        raise ValueError(f"token dtype must be <u2 or <u4, got {dtype}")
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
    limit = np.iinfo(dtype).max
    for name, value in (("bos_id", bos_id), ("eos_id", eos_id)):
        if value is not None and not 0 <= value <= limit:
            raise ValueError(f"{name} {value} does not fit {dtype}")
    if flat.size and (flat.min() < 0 or flat.max() > limit):
        bad = int(flat.max() if flat.max() > limit else flat.min())
        raise ValueError(f"token id {bad} does not fit {dtype}")
    extra = int(bos_id is not None) + int(eos_id is not None)
    out_lengths = lengths + extra
    ends = np.cumsum(out_lengths)
    if extra:
        out = np.empty(int(ends[-1]) if ends.size else 0, dtype=dtype)
        body = np.ones(out.size, dtype=bool)
        starts = ends - out_lengths
        if bos_id is not None:
            out[starts] = bos_id
            body[starts] = False
        if eos_id is not None:
            out[ends - 1] = eos_id
            body[ends - 1] = False
        out[body] = flat
    else:
        out = flat.astype(dtype)
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    offsets[1:] = ends * dtype.itemsize
    array = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), lengths.size, [None, pa.py_buffer(offsets), pa.py_buffer(out.tobytes())]
    )
    return array, out_lengths.astype(np.int32)


def encode_texts(
    encoder: Encoder, texts: Sequence[str], *, bos: bool = False, eos: bool = False, batch_size: int = 1024
) -> tuple[pa.LargeBinaryArray, np.ndarray]:
    """Encode `texts` in encode_batch calls of `batch_size` documents and pack them (see `pack_ids`)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ids: list[list[int]] = []
    for start in range(0, len(texts), batch_size):
        ids.extend(encoder.encode_batch(texts[start : start + batch_size]))
    return pack_ids(
        ids, encoder.dtype, bos_id=encoder.bos_id if bos else None, eos_id=encoder.eod_id if eos else None
    )


def decode_tokens(data: bytes, dtype: str | np.dtype) -> np.ndarray:
    """Token ids from little-endian bytes of `dtype` ('uint16'/'uint32'); ValueError on a ragged length."""
    dt = np.dtype(dtype).newbyteorder("<")
    if len(data) % dt.itemsize:
        raise ValueError(f"{len(data)} bytes is not a whole number of {dt} ids")
    return np.frombuffer(data, dtype=dt)


def tokenizer_info(encoder: Encoder) -> dict[str, Any]:
    """What tables and manifests record about the tokenizer."""
    return {
        "tokenizer_sha256": encoder.spec.sha256,
        "token_dtype": next(name for name, dt in TOKEN_DTYPES.items() if dt == encoder.dtype),
        "eod_id": encoder.eod_id,
        "vocab_size": encoder.vocab_size,
        "tokenizer_kind": encoder.spec.kind,
    }


def dumps_info(info: dict[str, Any]) -> str:
    return json.dumps(info, sort_keys=True, separators=(",", ":"))
