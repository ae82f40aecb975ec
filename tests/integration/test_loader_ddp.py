"""TokenLoader under torch.distributed (gloo, CPU) at world sizes 1, 2 and 4, with 0 and 2 workers.

Each world size runs once in spawned processes that write what every rank saw; the tests then check
disjointness and coverage, equal steps, topology independence, exact mid-epoch resume, elastic
resume from 4 ranks onto 2, and detection of a corrupt shard on every rank.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from loader_shard_fixture import id_docs, write_shards

pytestmark = pytest.mark.integration

SEQ = 8
GLOBAL_BATCH = 4
SEED = 11
ELASTIC_AT = 5  # steps consumed on 4 ranks before the state is saved
RESUME_AT = 3
N_DOCS = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _epoch_steps(docs: list[np.ndarray]) -> int:
    tokens = sum(len(d) + 1 for d in docs)
    return -(-tokens // (SEQ * GLOBAL_BATCH))


def _take(loader, n: int | None = None) -> np.ndarray:
    rows = []
    for batch in loader:
        rows.append(batch["input_ids"].numpy().copy())
        if n is not None and len(rows) == n:
            break
    return np.stack(rows) if rows else np.zeros((0, 0, SEQ), dtype=np.int64)


def _rank_main(rank: int, world: int, port: int, data: dict[str, str], steps: int, out: str) -> None:
    from sharding import CorruptShardError, TokenLoader

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=120))
    batch = GLOBAL_BATCH // world
    result: dict[str, np.ndarray] = {}

    def make(nw: int = 0, source: str = data["good"]) -> TokenLoader:
        return TokenLoader(
            source, seq_len=SEQ, batch_size=batch, seed=SEED, num_workers=nw, steps_per_epoch=steps
        )

    for nw in (0, 2):
        result[f"epoch_nw{nw}"] = ids = _take(make(nw))
        counts = torch.tensor([len(ids)])
        lo, hi = counts.clone(), counts.clone()
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        result[f"steps_nw{nw}"] = np.array([int(lo), int(hi)])

    first = make(2)
    head = _take(first, RESUME_AT)
    resumed = make(2)
    resumed.load_state_dict(first.state_dict())
    result["resume"] = np.concatenate([head, _take(resumed)])

    if world == 4:
        loader = make()
        _take(loader, ELASTIC_AT)
        if rank == 0:
            Path(data["state"]).write_text(json.dumps(loader.state_dict()))
    if world == 2:
        loader = make()
        loader.load_state_dict(json.loads(Path(data["state"]).read_text()))
        result["elastic"] = _take(loader)
        try:
            _take(make(source=data["corrupt"]))
            result["corrupt_error"] = np.array("")
        except CorruptShardError as exc:
            result["corrupt_error"] = np.array(str(exc))

    dist.barrier()  # every rank reaches the end: no hang at the epoch's end
    np.savez(Path(out) / f"rank{rank}.npz", **result)
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("ddp")
    docs = id_docs(N_DOCS, seed=3, max_len=30)
    good = write_shards(root / "good", docs, docs_per_shard=15)
    shutil.copytree(good.parent, root / "corrupt")
    tar = root / "corrupt" / "shard-000001.tar"
    raw = bytearray(tar.read_bytes())
    raw[600] ^= 0x55
    tar.write_bytes(bytes(raw))
    data = {
        "good": str(good),
        "corrupt": str(root / "corrupt" / "manifest.json"),
        "state": str(root / "state.json"),
    }
    steps = _epoch_steps(docs)
    results: dict = {"docs": docs, "steps": steps}
    for world in (1, 4, 2):  # 4 before 2: the elastic run resumes 4's state
        out = root / f"w{world}"
        out.mkdir()
        mp.start_processes(
            _rank_main,
            args=(world, _free_port(), data, steps, str(out)),
            nprocs=world,
            start_method="spawn",
            join=True,
        )
        results[world] = [dict(np.load(out / f"rank{r}.npz")) for r in range(world)]
    return results


def _global(ranks: list[dict], key: str) -> np.ndarray:
    """[steps, GLOBAL_BATCH, SEQ]: each step's rows of all ranks, in rank order."""
    return np.concatenate([r[key] for r in ranks], axis=1)


@pytest.mark.parametrize("world", [1, 2, 4])
@pytest.mark.parametrize("nw", [0, 2])
def test_equal_steps_disjoint_ranks_and_full_coverage(runs: dict, world: int, nw: int) -> None:
    ranks = runs[world]
    assert all(r[f"steps_nw{nw}"].tolist() == [runs["steps"]] * 2 for r in ranks)
    stream = _global(ranks, f"epoch_nw{nw}").reshape(-1)
    epoch_tokens = sum(len(d) + 1 for d in runs["docs"])
    pieces = np.split(stream[:epoch_tokens], np.flatnonzero(stream[:epoch_tokens] == 0) + 1)[:-1]
    ids = [int(p[0]) for p in pieces]
    # ranks' rows, put side by side, form the stream: every document exactly once and whole
    assert sorted(ids) == list(range(1, N_DOCS + 1))
    assert all(len(p) - 1 == len(runs["docs"][int(p[0]) - 1]) and (p[:-1] == p[0]).all() for p in pieces)


def test_the_global_sequence_is_the_same_for_every_topology(runs: dict) -> None:
    reference = _global(runs[1], "epoch_nw0")
    for world in (1, 2, 4):
        for nw in (0, 2):
            assert np.array_equal(_global(runs[world], f"epoch_nw{nw}"), reference), (world, nw)


@pytest.mark.parametrize("world", [1, 2, 4])
def test_mid_epoch_resume_is_exact(runs: dict, world: int) -> None:
    for r in runs[world]:
        assert np.array_equal(r["resume"], r["epoch_nw2"])


def test_elastic_resume_from_four_ranks_to_two(runs: dict) -> None:
    reference = _global(runs[1], "epoch_nw0")
    assert np.array_equal(_global(runs[2], "elastic"), reference[ELASTIC_AT:])


def test_corrupt_shard_is_detected_on_every_rank(runs: dict) -> None:
    for r in runs[2]:
        message = str(r["corrupt_error"])
        assert "shard-000001.tar" in message and "sha256" in message
