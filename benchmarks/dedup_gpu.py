"""GPU MinHash (benchmarks/minhash_torch.py, torch) against the CPU kernel: bit-identity and throughput on one corpus.

    .venv/bin/python -m benchmarks.dedup_gpu [--text FILE] [--mb 256] [--device cuda]

Text: FILE (any UTF-8 text, cut into ~2 KB documents at line ends), else the Debian real-text packages
(benchmarks/dedup_quality.py), repeated up to --mb megabytes. Prints, for the same documents: CPU text ->
signatures (numba, all threads and one thread), CPU shingling alone, device MinHash from shingle hashes
(with host<->device copies) and CPU shingling + device MinHash; then whether every signature matches the
CPU kernel's bit for bit (exit status 1 if not).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa

# benchmarks/ holds scripts named like modules (dedup.py, tokenize.py): keep the folder off the front
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.append(str(_HERE))

from benchmarks._timing import median_seconds  # noqa: E402
from benchmarks.minhash_torch import minhash_from_hashes_torch  # noqa: E402
from dedup.minhash import minhash_signatures  # noqa: E402
from dedup.shingle import shingle_hashes  # noqa: E402


def documents(text: str, target_mb: float, doc_bytes: int = 2000) -> pa.Array:
    docs, cur, size = [], [], 0
    for line in text.splitlines():
        cur.append(line)
        size += len(line) + 1
        if size >= doc_bytes:
            docs.append("\n".join(cur))
            cur, size = [], 0
    if cur:
        docs.append("\n".join(cur))
    total = sum(len(d.encode()) for d in docs)
    reps = max(1, int(np.ceil(target_mb * 1e6 / total)))
    return pa.array(docs * reps, pa.large_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text", type=Path)
    parser.add_argument("--mb", type=float, default=256.0)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile-fused kernel")
    args = parser.parse_args()
    import torch

    if args.text:
        text = args.text.read_text(errors="replace")
    else:
        from dedup_quality import source_texts

        text = "\n".join(source_texts().values())
    arr = documents(text, args.mb)
    mb = float(np.frombuffer(arr.buffers()[1], np.int64)[-1]) / 1e6
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"corpus: {len(arr)} docs, {mb:.0f} MB; device {name}; numba threads {numba.get_num_threads()}; "
          f"num_perm {args.num_perm}")

    k = args.num_perm
    minhash_signatures(arr[:100], num_perm=k)  # compile
    t_cpu, cpu_sig = median_seconds(lambda: minhash_signatures(arr, num_perm=k), args.repeats)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    one = arr[: max(1, len(arr) // 8)]
    one_mb = float(np.frombuffer(one.buffers()[1], np.int64)[one.offset + len(one)] -
                   np.frombuffer(one.buffers()[1], np.int64)[one.offset]) / 1e6
    t_one, _ = median_seconds(lambda: minhash_signatures(one, num_perm=k), args.repeats)
    numba.set_num_threads(threads)
    t_sh, (hashes, offsets) = median_seconds(lambda: shingle_hashes(arr), args.repeats)

    def on_device(compiled: bool) -> np.ndarray:
        out = minhash_from_hashes_torch(hashes, offsets, num_perm=k, device=dev, compile=compiled)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return out

    on_device(False)  # warm up
    t_eager, eager_sig = median_seconds(lambda: on_device(False), args.repeats)
    t_dev, dev_sig = t_eager, eager_sig
    if args.compile:
        on_device(True)  # compile
        t_dev, dev_sig = median_seconds(lambda: on_device(True), args.repeats)
        print(f"{name} MinHash, eager torch (incl. copies): {mb / t_eager:9.1f} MB/s; torch.compile below")
    n_sh = len(hashes)
    print(f"CPU text -> signatures, {threads} threads: {mb / t_cpu:9.1f} MB/s")
    print(f"CPU text -> signatures, 1 thread:  {one_mb / t_one:9.1f} MB/s per core")
    print(f"CPU shingling only, {threads} threads:    {mb / t_sh:9.1f} MB/s ({n_sh / t_sh / 1e6:.1f} M shingles/s)")
    print(f"{name} MinHash from shingle hashes (incl. copies): {mb / t_dev:9.1f} MB/s "
          f"({n_sh / t_dev / 1e6:.1f} M shingles/s, {n_sh * k / t_dev / 1e9:.1f} G hash-permutations/s)")
    print(f"CPU shingling + {name} MinHash: {mb / (t_sh + t_dev):9.1f} MB/s; "
          f"device MinHash vs CPU full kernel ({threads} threads): {t_cpu / t_dev:.2f}x")
    same = bool(np.array_equal(cpu_sig, dev_sig)) and bool(np.array_equal(cpu_sig, eager_sig))
    print(f"bit-identical to the CPU kernel: {same} ({cpu_sig.shape[0]} signatures x {k})")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
