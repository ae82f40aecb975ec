"""Fixtures shared by the loader tests."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from sharding import loader_store


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the checksum computations per shard file name."""
    seen: Counter[str] = Counter()
    real = loader_store.sha256_file

    def counting(path):  # type: ignore[no-untyped-def]
        seen[Path(path).name] += 1
        return real(path)

    monkeypatch.setattr(loader_store, "sha256_file", counting)
    return seen
