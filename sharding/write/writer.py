"""The streaming shard writer: samples into one shard through a sink (sharding.write.sinks), recording the
index, sha256 and counts as it goes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from sharding.format.tar import (
    END_OF_ARCHIVE,
    INDEX_DTYPE,
    JSON_EXT,
    TOKENS_EXT,
    padded,
    sample_key,
    ustar_header,
)
from sharding.write.sinks import Sink


@dataclass
class ShardStats:
    """What the manifest records about one written shard."""

    shard_index: int
    bytes: int = 0
    n_samples: int = 0
    n_tokens: int = 0
    sha256: str = ""
    index_sha256: str = ""
    index: np.ndarray = field(default_factory=lambda: np.empty(0, INDEX_DTYPE))


class ShardWriter:
    """Streams samples into one shard through a sink, hashing and indexing as it goes.

    Samples get consecutive keys starting at `first_index`. `finish` appends the end-of-archive blocks,
    commits the sink and returns the stats; any error before that should be followed by `abort`.
    """

    def __init__(self, sink: Sink, shard_index: int, first_index: int) -> None:
        self.sink = sink
        self.stats = ShardStats(shard_index=shard_index)
        self.next_index = first_index
        self._sha = hashlib.sha256()
        self._rows: list[tuple[int, int, int, int]] = []

    def _emit(self, data: bytes) -> None:
        self.sink.write(data)
        self._sha.update(data)
        self.stats.bytes += len(data)

    def _member(self, name: str, data: bytes) -> int:
        self._emit(ustar_header(name, len(data)))
        offset = self.stats.bytes
        self._emit(data)
        pad = padded(len(data)) - len(data)
        if pad:
            self._emit(bytes(pad))
        return offset

    def add(self, tokens: bytes, meta_json: bytes, n_tokens: int) -> None:
        key = sample_key(self.next_index)
        tokens_offset = self._member(f"{key}.{TOKENS_EXT}", tokens)
        json_offset = self._member(f"{key}.{JSON_EXT}", meta_json)
        self._rows.append((tokens_offset, n_tokens, json_offset, len(meta_json)))
        self.next_index += 1
        self.stats.n_samples += 1
        self.stats.n_tokens += n_tokens

    def finish(self) -> ShardStats:
        self._emit(END_OF_ARCHIVE)
        self.sink.commit()
        self.stats.sha256 = self._sha.hexdigest()
        self.stats.index = np.array(self._rows, dtype=INDEX_DTYPE) if self._rows else np.empty(0, INDEX_DTYPE)
        return self.stats

    def abort(self) -> None:
        self.sink.abort()
