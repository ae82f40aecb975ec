"""Shared fixtures: one local[2] SparkSession per test session, and a fresh embedded lake per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.config import Config, load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from pipelines.config import SparkConfig
    from pipelines.lake.spark import build_session

    session = build_session(
        SparkConfig(master="local[2]", app_name="tokenmill-tests", conf={"spark.sql.shuffle.partitions": "4"})
    )
    yield session
    session.stop()


@pytest.fixture
def lake_config(tmp_path: Path) -> Config:
    """A config whose lake (SQLite catalog, warehouse, shards) lives in a temp dir."""
    return load_config(None, [f"lake.root={tmp_path / 'lake'}", "spark.master=local[2]"])
