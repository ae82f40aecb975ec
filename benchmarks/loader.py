"""TokenLoader against WebDataset, Mosaic Streaming (MDS) and LitData on the same tokenized corpus.

One run: build a synthetic tokenized corpus (seeded document lengths and token ids), write it as
tokenmill shards, MDS shards and LitData chunks, then time each loader in its own fresh process
delivering int64 ``[batch, seq_len]`` batches, epoch after epoch. Every loader gets the same
rule: time to the first batch (from opening the loader), then ``--warmup`` seconds of batches, then
``--seconds`` of measured batches whose rate is the steady tokens/s; "tokens/s all" is the rate over
everything after the first batch (warm-up included). Peak RSS is summed over the loader's processes.
Each figure is the median of ``--repeats`` runs; ratios are TokenLoader over each anchor.

The anchors deliver ``input_ids`` alone, and so does the ``tokenmill`` row (``fields=("input_ids",)``):
the like-for-like comparison. ``tokenmill+all`` also computes ``labels``, ``position_ids`` and
``cu_seqlens`` (TokenLoader's default), which no anchor makes: three int64 arrays per token instead
of one.

With ``--workers 0`` TokenLoader packs in two producer threads beside the consumer (the packing
kernel releases the GIL, so up to three cores are busy), so WebDataset and LitData also run under
one DataLoader worker process (``name@1``, two processes) besides their main-process setting, and
both comparisons are printed (``--anchor-workers``).

    .venv/bin/python -m benchmarks.loader --repeats 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

# benchmarks/ holds modules named like stdlib ones (tokenize.py): keep this script's folder off the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

EOD = 0
VOCAB = 50_000
# "tokenmill" computes what the anchors deliver (input_ids); "tokenmill+all" also labels,
# position_ids and cu_seqlens (three times the bytes written per token)
LOADERS = ("tokenmill", "tokenmill+all", "webdataset", "mosaic-mds", "litdata")
OURS = ("tokenmill", "tokenmill+all")


def make_corpus(n_tokens: int, seed: int) -> list[np.ndarray]:
    """Documents with log-normal lengths (median ~450 tokens) and uniform token ids in [1, VOCAB)."""
    rng = np.random.default_rng(seed)
    docs, total = [], 0
    while total < n_tokens:
        n = int(np.clip(rng.lognormal(6.1, 1.0), 8, 16_384))
        docs.append(rng.integers(1, VOCAB, size=n, dtype=np.uint16))
        total += n
    return docs


def write_tokenmill(docs: list[np.ndarray], out: Path, target_bytes: int) -> Path:
    from sharding.format.tar import END_OF_ARCHIVE, INDEX_DTYPE, encode_sample, index_bytes, sample_json

    out.mkdir(parents=True)
    shards: list[dict[str, Any]] = []
    rows: list[tuple[int, int, int, int]] = []
    parts: list[bytes] = []
    size = 0

    def flush() -> None:
        nonlocal rows, parts, size
        s = len(shards)
        data = b"".join(parts) + END_OF_ARCHIVE
        idx = index_bytes(np.array(rows, dtype=INDEX_DTYPE))
        (out / f"shard-{s:06d}.tar").write_bytes(data)
        (out / f"shard-{s:06d}.idx.npy").write_bytes(idx)
        shards.append(
            {
                "path": f"shard-{s:06d}.tar",
                "index": f"shard-{s:06d}.idx.npy",
                "bytes": len(data),
                "n_samples": len(rows),
                "n_tokens": sum(r[1] for r in rows),
                "sha256": hashlib.sha256(data).hexdigest(),
                "index_sha256": hashlib.sha256(idx).hexdigest(),
            }
        )
        rows, parts, size = [], [], 0

    for i, doc in enumerate(docs):
        meta = sample_json(f"d{i}", len(doc), "bench")
        blob = encode_sample(i, doc.tobytes(), meta)
        if parts and size + len(blob) + 1024 > target_bytes:
            flush()
        tok_off = size + 512
        json_off = tok_off + -(-doc.nbytes // 512) * 512 + 512
        rows.append((tok_off, len(doc), json_off, len(meta)))
        parts.append(blob)
        size += len(blob)
    flush()
    manifest = {
        "format": "tokenmill-shards/1",
        "token_dtype": "uint16",
        "eod_id": EOD,
        "vocab_size": VOCAB,
        "tokenizer_sha256": "0" * 64,
        "target_bytes": target_bytes,
        "n_shards": len(shards),
        "n_samples": len(docs),
        "n_tokens": int(sum(len(d) for d in docs)),
        "total_bytes": sum(int(s["bytes"]) for s in shards),
        "params_hash": "bench",
        "shards": shards,
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out / "manifest.json"


def _import_streaming():
    # mosaicml-streaming imports its vision datasets (torchvision) eagerly; token loading needs none of it
    sys.modules.setdefault("streaming.vision", types.ModuleType("streaming.vision"))
    import streaming

    return streaming


def write_mds(docs: list[np.ndarray], out: Path, target_bytes: int) -> None:
    streaming = _import_streaming()
    with streaming.MDSWriter(
        out=str(out), columns={"tokens": "ndarray:uint16"}, size_limit=target_bytes
    ) as w:
        for doc in docs:
            w.write({"tokens": doc})


def _litdata_item(doc: np.ndarray):
    import torch

    return torch.from_numpy(np.append(doc, np.uint16(EOD)).astype(np.int32))


def write_litdata(docs: list[np.ndarray], out: Path, target_bytes: int) -> None:
    from litdata import TokensLoader, optimize

    optimize(
        fn=_litdata_item,
        inputs=docs,
        output_dir=str(out),
        chunk_bytes=target_bytes,
        item_loader=TokensLoader(),
        num_workers=1,
        mode="overwrite",
    )


def pack(docs: Iterable[np.ndarray], seq_len: int, batch: int) -> Iterator[np.ndarray]:
    """Reference packer for the anchors: documents + EOD concatenated, cut into [batch, seq_len]."""
    need = batch * seq_len
    parts: list[np.ndarray] = []
    have = 0
    for doc in docs:
        parts.append(doc)
        parts.append(np.array([EOD], dtype=doc.dtype))
        have += len(doc) + 1
        if have >= need:
            flat = np.concatenate(parts).astype(np.int64)
            yield flat[:need].reshape(batch, seq_len)
            parts, have = [flat[need:]], len(flat) - need


def _epochs(make_epoch) -> Iterator:
    """Items of ``make_epoch()`` (one epoch's iterable), epoch after epoch, without end."""
    while True:
        yield from make_epoch()


WORKER_ANCHORS = ("webdataset", "litdata")  # anchors that run under DataLoader workers here


def _in_workers(make: Callable[[], Iterator], workers: int) -> Iterator:
    """``make()``'s items, produced in ``workers`` DataLoader worker processes when ``workers`` > 0."""
    if workers == 0:
        return make()
    from torch.utils.data import DataLoader, IterableDataset

    class Items(IterableDataset):
        def __iter__(self) -> Iterator:
            return make()

    return iter(DataLoader(Items(), batch_size=None, num_workers=workers, prefetch_factor=2))


def open_loader(name: str, data: Path, seq_len: int, batch: int, workers: int) -> Iterator:
    """An endless iterator of int64 ``[batch, seq_len]`` tensors: the loader's epochs end to end.
    ``name@N`` runs an anchor of :data:`WORKER_ANCHORS` with ``N`` DataLoader workers."""
    import torch

    name, _, at = name.partition("@")
    workers = int(at) if at else workers

    if name in OURS:
        from sharding import TokenLoader
        from sharding.loader import FIELDS

        fields = ("input_ids",) if name == "tokenmill" else FIELDS
        loader = TokenLoader(
            data / "tokenmill", seq_len=seq_len, batch_size=batch, seed=0, num_workers=workers, fields=fields
        )
        return (b["input_ids"] for b in _epochs(lambda: loader))
    if name == "webdataset":
        import webdataset as wds

        urls = sorted(str(p) for p in (data / "tokenmill").glob("shard-*.tar"))
        ds = wds.WebDataset(urls, shardshuffle=len(urls), seed=0, empty_check=False).shuffle(1000)
        ds = ds.map(lambda s: np.frombuffer(s["tokens"], dtype="<u2"))
        # packing runs where the documents are read: in the worker when there is one
        batches = _in_workers(lambda: pack(_epochs(lambda: ds), seq_len, batch), workers)
        return (b if isinstance(b, torch.Tensor) else torch.from_numpy(b) for b in batches)
    if name == "mosaic-mds":
        streaming = _import_streaming()
        streaming.base.util.clean_stale_shared_memory()
        ds = streaming.StreamingDataset(
            local=str(data / "mds"), shuffle=True, shuffle_seed=0, batch_size=batch
        )
        docs = _epochs(lambda: (s["tokens"] for s in ds))
        return (torch.from_numpy(b) for b in pack(docs, seq_len, batch))
    if name == "litdata":
        from litdata import StreamingDataLoader, StreamingDataset, TokensLoader

        ds = StreamingDataset(
            str(data / "litdata"), item_loader=TokensLoader(block_size=seq_len), shuffle=True, seed=0
        )
        dl = StreamingDataLoader(ds, batch_size=batch, num_workers=workers)
        return (b.to(torch.int64) for b in _epochs(lambda: dl))
    raise ValueError(f"unknown loader {name!r}")


def _rss_tree(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_one(
    name: str, data: Path, seq_len: int, batch: int, workers: int, warmup_s: float, seconds: float
) -> dict:
    """Measured inside a fresh process: first-batch latency, tokens/s over ``seconds`` after
    ``warmup_s`` of batches (and over both), peak RSS of the process tree."""
    import os

    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_tree(os.getpid()))
            time.sleep(0.02)

    import torch  # noqa: F401  (every loader needs it; its import is not the loader's latency)

    threading.Thread(target=sample, daemon=True).start()
    t0 = time.perf_counter()
    it = open_loader(name, data, seq_len, batch, workers)
    first = next(it)
    t_first = time.perf_counter() - t0
    assert first.dtype.is_floating_point is False and tuple(first.shape) == (batch, seq_len), first.shape
    tokens = 0
    t1 = time.perf_counter()
    steady_from, steady_tokens = t1 + warmup_s, -1
    for b in it:
        tokens += b.numel()
        now = time.perf_counter()
        if now >= steady_from:
            if steady_tokens < 0:
                steady_from, steady_tokens = now, tokens  # the measured span starts at a batch edge
            elif now >= steady_from + seconds:
                break
    done.set()
    return {
        "first_batch_s": t_first,
        "tokens_per_s": (tokens - steady_tokens) / (now - steady_from),
        "tokens_per_s_all": tokens / (now - t1),
        "peak_rss_mb": peak[0] / 2**20,
        "tokens": tokens,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=20_000_000, help="corpus size in tokens")
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers for loaders that take them")
    ap.add_argument(
        "--anchor-workers",
        default="0,1",
        help="DataLoader worker counts to run the worker-taking anchors at (TokenLoader uses --workers; "
        "at 0 it packs in two producer threads beside the consumer, so 1 is the nearest-resources setting)",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of batches after the first, unmeasured"
    )
    ap.add_argument(
        "--seconds", type=float, default=3.0, help="seconds of measured batches after the warm-up"
    )
    ap.add_argument("--shard-bytes", type=int, default=32 * 2**20)
    ap.add_argument("--only", default=",".join(LOADERS))
    ap.add_argument("--data", type=Path, default=None, help="reuse a corpus folder written by an earlier run")
    ap.add_argument("--run", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        got = run_one(args.run, args.data, args.seq_len, args.batch, args.workers, args.warmup, args.seconds)
        print(json.dumps(got))
        return
    data = args.data or Path(tempfile.mkdtemp(prefix="tokenmill-bench-"))
    names = []
    for name in args.only.split(","):
        if name in WORKER_ANCHORS:
            names += [
                name if int(w) == args.workers else f"{name}@{int(w)}" for w in args.anchor_workers.split(",")
            ]
        else:
            names.append(name)
    # webdataset reads the tokenmill tars; each other format is written only when its loader runs
    wanted = (
        {"tokenmill"}
        | {"mds" for n in names if n == "mosaic-mds"}
        | {"litdata" for n in names if n.startswith("litdata")}
    )
    docs = None
    for label, fn in (("tokenmill", write_tokenmill), ("mds", write_mds), ("litdata", write_litdata)):
        if label not in wanted or (data / label).exists():
            continue
        if docs is None:
            docs = make_corpus(args.tokens, seed=0)
            print(f"corpus: {len(docs)} documents, {sum(len(d) for d in docs)} tokens -> {data}")
        t = time.perf_counter()
        fn(docs, data / label, args.shard_bytes)
        print(f"  wrote {label} in {time.perf_counter() - t:.1f}s")
    runs: dict[str, list[dict] | None] = {name: [] for name in names}
    # repeats interleave the loaders, so a change in load on a shared machine hits each of them alike
    for _ in range(args.repeats):
        for name in names:
            if runs[name] is None:
                continue
            cmd = [
                sys.executable,
                __file__,
                "--run",
                name,
                "--data",
                str(data),
                "--seq-len",
                str(args.seq_len),
                "--batch",
                str(args.batch),
                "--workers",
                str(args.workers),
                "--warmup",
                str(args.warmup),
                "--seconds",
                str(args.seconds),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{name}: failed\n{proc.stderr[-2000:]}")
                runs[name] = None
                continue
            done = runs[name]
            assert done is not None  # a failed loader is skipped above
            done.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    results = {
        name: {k: statistics.median(r[k] for r in got) for k in got[0]} for name, got in runs.items() if got
    }
    print(
        f"\nseq_len={args.seq_len} batch={args.batch} workers={args.workers} repeats={args.repeats} "
        f"warm-up {args.warmup:g}s, measured {args.seconds:g}s (medians)"
    )
    print(f"{'loader':<12} {'steady tok/s':>14} {'tok/s all':>14} {'first batch s':>14} {'peak RSS MB':>12}")
    for name, r in results.items():
        print(
            f"{name:<12} {r['tokens_per_s']:>14,.0f} {r['tokens_per_s_all']:>14,.0f} "
            f"{r['first_batch_s']:>14.3f} {r['peak_rss_mb']:>12.0f}"
        )
    anchors = [k for k in results if k not in OURS]
    for us in OURS:
        ours = results.get(us)
        if not ours:
            continue
        print(f"{us}:")
        for k in anchors:
            v = results[k]
            print(
                f"  vs {k}: {ours['tokens_per_s'] / v['tokens_per_s']:.2f}x tokens/s, "
                f"{ours['peak_rss_mb'] / v['peak_rss_mb']:.2f}x peak RSS"
            )
        # same processes (anchors without workers) and nearest cores (anchors with one worker process:
        # the consumer plus one producer, against TokenLoader's consumer plus its two producer threads)
        for label, group in (
            (f"anchors at workers={args.workers}", [k for k in anchors if "@" not in k]),
            ("anchors with 1 worker (nearest cores)", [k for k in anchors if k.endswith("@1")]),
        ):
            if group:
                best = max(group, key=lambda k: results[k]["tokens_per_s"])
                ratio = ours["tokens_per_s"] / results[best]["tokens_per_s"]
                print(f"  {us} / best of {label} ({best}) steady tokens/s: {ratio:.2f}x (target >= 1.5x)")
        print(f"  {us} first batch: {ours['first_batch_s']:.3f}s (target <= 1 s)")


if __name__ == "__main__":
    main()
