"""From a Kafka stream to a trainer with no restart: `run --follow` publishes manifests that extend each other,
and a `TokenLoader(follow=True)` reading the shard folder's manifest moves onto each at its next epoch."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from test_follow_cycles import _chapters, _config, produce

from pipelines.stages.follow import StopFlag, run_follow
from sharding import TokenLoader

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]


def _pieces(stream: np.ndarray, eod: int) -> Counter[bytes]:
    """The documents (tokens up to each EOD) of a stretch of stream that starts at a document start."""
    cut = np.split(stream, np.flatnonzero(stream == eod) + 1)[:-1]
    return Counter(p.tobytes() for p in cut)


def _manifest(path: Path) -> dict:
    return json.loads(path.read_text())


def test_a_follow_loader_moves_onto_each_published_manifest_at_its_next_epoch(spark, tmp_path, kafka_bootstrap):
    cfg = _config(tmp_path / "lake", kafka_bootstrap, "follow-loader", interval=0.5, poll=0.2)
    cfg = cfg.model_copy(update={"shard": cfg.shard.model_copy(update={"target_bytes": 8192})})
    produce(kafka_bootstrap, "follow-loader", _chapters(60, 12), create=True)
    path = Path(cfg.shards_uri()) / "manifest.json"
    flag = StopFlag()
    seen: dict[str, object] = {}
    rows: list[np.ndarray] = []

    def take(batches) -> None:
        rows.extend(r for b in batches for r in b["input_ids"].numpy().copy())

    def on_cycle(report) -> None:
        if report.cycle == 1:
            seen["first"] = _manifest(path)
            loader = seen["loader"] = TokenLoader(str(path), seq_len=32, batch_size=2, seed=1, follow=True)
            it = iter(loader)
            take([next(it) for _ in range(2)])  # a trainer in the middle of its first epoch
            produce(kafka_bootstrap, "follow-loader", _chapters(72, 8))
        elif report.cycle == 2:
            seen["second"] = _manifest(path)
            loader = seen["loader"]
            take(loader)  # the rest of epoch 0: the manifest published meanwhile does not change it
            seen["eras_before"] = loader.state_dict()["eras"]
            take(loader)  # epoch 1 starts on the new manifest
            seen["eras_after"] = loader.state_dict()["eras"]
            it = iter(loader)
            take([next(it) for _ in range(3)])  # loader epochs end up to a global batch before the stream's
            flag.stopping.set()

    cycles = run_follow(cfg, spark, flag=flag, on_cycle=on_cycle)
    assert [c.records_read for c in cycles] == [12, 8]
    first, second = seen["first"], seen["second"]
    n1, n2 = first["n_shards"], second["n_shards"]
    assert n2 > n1 and [s["sha256"] for s in second["shards"][:n1]] == [s["sha256"] for s in first["shards"]]
    assert seen["eras_before"] == [[[0, n1]]] and seen["eras_after"] == [[[0, n1], [1, n2]]]
    eod = first["eod_id"]
    t1 = first["n_tokens"] + first["n_samples"]
    t2 = second["n_tokens"] + second["n_samples"]
    stream = np.concatenate(rows)
    assert len(stream) >= t1 + t2
    epoch0, epoch1 = _pieces(stream[:t1], eod), _pieces(stream[t1 : t1 + t2], eod)
    assert sum(epoch0.values()) == first["n_samples"]  # the first pass: the first manifest's documents, once
    assert sum(epoch1.values()) == second["n_samples"]  # the second: all of the new manifest's
    assert not epoch0 - epoch1  # the old documents come again, the new ones joined them
