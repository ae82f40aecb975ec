"""Offline training of a byte-level BPE with HF `tokenizers`; `<|endoftext|>` is the EOD token with id 0.

A trained tokenizer is written with a training record next to it (`<tokenizer>.train.json`: the training
settings and the file's sha256). `training_reason` reads it back: a tokenizer trained with the same settings
is kept when new data arrives, so tokens already written stay valid and the later stages stay incremental.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

log = logging.getLogger(__name__)

EOD_TOKEN = "<|endoftext|>"


def train_bpe(
    texts: Iterable[str], *, vocab_size: int, min_frequency: int = 2, eod_token: str = EOD_TOKEN
) -> Tokenizer:
    """Train a byte-level BPE on `texts` (no network, no files).

    The vocabulary holds `eod_token` at id 0, then the 256 byte symbols, then merges, up to `vocab_size` ids
    (fewer when the corpus has too few pairs of `min_frequency`). Training on the same texts in the same order
    gives the same tokenizer.json. ValueError for a vocab_size below 257.
    """
    if vocab_size < 257:
        raise ValueError(f"vocab_size must be at least 257 (256 bytes + EOD), got {vocab_size}")
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[eod_token],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def save_tokenizer(tok: Tokenizer, path: str | Path) -> Path:
    """Write tokenizer.json to `path` through a temporary name and a rename; returns the path."""
    p = Path(str(path).removeprefix("file://"))
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    tmp.write_text(tok.to_str(pretty=True), encoding="utf-8")
    os.replace(tmp, p)
    return p


def training_record_path(tokenizer: str | Path) -> Path:
    """Where the training record of the tokenizer file `tokenizer` lives: `<tokenizer>.train.json`."""
    p = Path(str(tokenizer).removeprefix("file://"))
    return p.with_name(f"{p.name}.train.json")


def write_training_record(tokenizer: str | Path, settings: dict[str, Any]) -> Path:
    """Record that the file at `tokenizer` was trained with `settings` (JSON-able), with the file's sha256;
    written through a temporary name and a rename, after the tokenizer itself."""
    p = Path(str(tokenizer).removeprefix("file://"))
    record = {"settings": settings, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
    out = training_record_path(p)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return out


def training_reason(tokenizer: str | Path, settings: dict[str, Any]) -> str | None:
    """Why the tokenizer at `tokenizer` must be (re)trained for `settings`, or None when the file exists and
    its training record names the same settings and the file's current sha256 (keep it).

    >>> training_reason("/nonexistent/tokenizer.json", {"vocab_size": 8192})
    'no tokenizer at /nonexistent/tokenizer.json'
    """
    p = Path(str(tokenizer).removeprefix("file://"))
    if not p.is_file():
        return f"no tokenizer at {p}"
    try:
        record = json.loads(training_record_path(p).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"{p} has no training record ({training_record_path(p).name})"
    if not isinstance(record, dict) or record.get("settings") != json.loads(json.dumps(settings)):
        return f"training settings changed since {p} was trained"
    if record.get("sha256") != hashlib.sha256(p.read_bytes()).hexdigest():
        return f"{p} changed since it was trained"
    return None


def tiktoken_ranks_from_bpe(tok: Tokenizer) -> bytes:
    """A tiktoken ranks file (`base64(token bytes) rank` lines) equivalent to a byte-level BPE's vocabulary,
    leaving out its special tokens. Ranks follow the BPE ids, so merges apply in the same order."""
    byte_of = {ch: b for b, ch in _bytes_to_unicode().items()}
    specials = {t.content for t in tok.get_added_tokens_decoder().values()}
    lines = []
    for token, token_id in sorted(tok.get_vocab(with_added_tokens=False).items(), key=lambda kv: kv[1]):
        if token in specials:
            continue
        raw = bytes(byte_of[ch] for ch in token)
        lines.append(base64.b64encode(raw) + b" " + str(token_id).encode())
    return b"\n".join(lines) + b"\n"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table used by byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))
