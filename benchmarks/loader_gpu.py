"""TokenLoader feeding a CUDA device: stall time and tokens/s under a synthetic consumer.

The consumer stands in for a training step: an embedding lookup of ``input_ids`` followed by
``--matmuls`` bf16 matmuls of ``[batch * seq_len, hidden] x [hidden, hidden]`` on the default
stream, ending in a device synchronisation (as a step that logs its loss does). So the GPU idles
exactly while the loop waits in ``next(loader)``: that wait is the stall time. Runs the same consumer on
``device="cuda"`` (pinned ring, copy stream) and on plain CPU batches moved with a synchronous
``.to("cuda")``, side by side; medians of ``--repeats``.

    python -m benchmarks.loader_gpu --tokens 20000000 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType


def _sibling(name: str) -> ModuleType:
    # loaded by path, so that benchmarks/ itself never goes on sys.path
    import importlib.util

    path = Path(__file__).resolve().parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_bench = _sibling("loader")
make_corpus, write_tokenmill = _bench.make_corpus, _bench.write_tokenmill


def run(
    manifest: Path,
    *,
    mode: str,
    seq_len: int,
    batch: int,
    workers: int,
    steps: int,
    matmuls: int,
    hidden: int,
) -> dict[str, float]:
    import torch

    from sharding import TokenLoader

    dev = torch.device("cuda")
    emb = torch.randn(65536, hidden, device=dev, dtype=torch.bfloat16)
    w = torch.randn(hidden, hidden, device=dev, dtype=torch.bfloat16) / hidden**0.5
    loader = TokenLoader(
        manifest,
        seq_len=seq_len,
        batch_size=batch,
        num_workers=workers,
        device="cuda" if mode == "ring" else None,
        steps_per_epoch=steps + 1,
    )
    it = iter(loader)
    t0 = time.perf_counter()
    first = next(it)
    first_s = time.perf_counter() - t0
    stall = 0.0
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        t = time.perf_counter()
        b = next(it)
        ids = b["input_ids"] if mode == "ring" else b["input_ids"].to(dev)
        stall += time.perf_counter() - t
        h = emb[ids.reshape(-1)]
        for _ in range(matmuls):
            h = torch.tanh(h @ w)
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    assert first["input_ids"].shape == (batch, seq_len)
    return {
        "tokens_per_s": steps * batch * seq_len / wall,
        "stall_s": stall,
        "wall_s": wall,
        "stall_pct": 100 * stall / wall,
        "first_batch_s": first_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=20_000_000)
    ap.add_argument("--seq-len", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--matmuls", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", type=Path, default=None)
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("loader_gpu.py needs a CUDA device")
    data = args.data or Path(tempfile.mkdtemp(prefix="tokenmill-gpu-bench-"))
    manifest = data / "tokenmill" / "manifest.json"
    if not manifest.exists():
        write_tokenmill(make_corpus(args.tokens, seed=0), data / "tokenmill", 32 * 2**20)
    steps = min(args.steps, int(args.tokens * 0.9) // (args.batch * args.seq_len) - 1)
    print(
        f"{torch.cuda.get_device_name()}: seq_len={args.seq_len} batch={args.batch} workers={args.workers} "
        f"steps={steps} consumer={args.matmuls} matmuls of {args.hidden}^2 (medians of {args.repeats})"
    )
    print(f"{'mode':<22} {'tokens/s':>14} {'stall s':>9} {'stall %':>8} {'first batch s':>14}")
    for mode, label in (("ring", "TokenLoader cuda ring"), ("cpu", "CPU batches + .to()")):
        runs = [
            run(
                manifest,
                mode=mode,
                seq_len=args.seq_len,
                batch=args.batch,
                workers=args.workers,
                steps=steps,
                matmuls=args.matmuls,
                hidden=args.hidden,
            )
            for _ in range(args.repeats)
        ]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"{label:<22} {med['tokens_per_s']:>14,.0f} {med['stall_s']:>9.3f} {med['stall_pct']:>8.1f} "
            f"{med['first_batch_s']:>14.3f}"
        )
    # the consumer alone, on one device-resident batch: the ceiling the loader is measured against
    emb = torch.randn(65536, args.hidden, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(args.hidden, args.hidden, device="cuda", dtype=torch.bfloat16) / args.hidden**0.5
    ids = torch.randint(1, 65536, (args.batch * args.seq_len,), device="cuda")
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        h = emb[ids]
        for _ in range(args.matmuls):
            h = torch.tanh(h @ w)
        torch.cuda.synchronize()
    print(f"{'consumer alone':<22} {steps * args.batch * args.seq_len / (time.perf_counter() - t):>14,.0f}")


if __name__ == "__main__":
    main()
