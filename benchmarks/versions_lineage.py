"""Monitoring and lineage kernels against their anchors, on the same data in one run.

1. Signal drift: `pipelines.ops.monitor.ks_distance` against `scipy.stats.ks_2samp` (statistic only) on two
   seeded samples of `--n` values each; the statistics must agree.
2. Lineage shard lookup: finding the shard member of a document with `pipelines.ops.lineage.locate_in_shards`
   (reads each shard's index, then only the JSON members) against reading the tars from the start with the
   upstream `webdataset` library until the document turns up. Shards are written with tokenmill's own shard
   writer; documents to look up are drawn with a fixed seed, spread over the whole dataset.

Figures are medians of `--repeats` runs; ratios are anchor time / tokenmill time (above 1: tokenmill faster).

    .venv/bin/python -m benchmarks.versions_lineage --n 2000000 --docs 40000 --lookups 5 --repeats 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np

from benchmarks._timing import median_seconds  # noqa: E402


def write_dataset(folder: Path, n_docs: int, docs_per_shard: int, seed: int) -> dict:
    from sharding.format.manifest import build_manifest, index_name, manifest_bytes, shard_name
    from sharding.format.tar import index_bytes, sample_json
    from sharding.write.sinks import open_sink, write_object
    from sharding.write.writer import ShardWriter

    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(6.1, 1.0, n_docs), 8, 16_384).astype(np.int64)
    stats, key = [], 0
    for s, start in enumerate(range(0, n_docs, docs_per_shard)):
        w = ShardWriter(open_sink(str(folder), shard_name(s)), s, key)
        for i in range(start, min(n_docs, start + docs_per_shard)):
            toks = rng.integers(1, 50_000, int(lengths[i]), dtype=np.uint16)
            w.add(toks.tobytes(), sample_json(f"doc-{i:08d}", int(lengths[i]), "local:bench"), int(lengths[i]))
        st = w.finish()
        data = index_bytes(st.index)
        write_object(str(folder), index_name(s), data)
        st.index_sha256 = hashlib.sha256(data).hexdigest()
        stats.append(st)
        key = w.next_index
    manifest = build_manifest(stats, token_dtype="uint16", eod_id=0, vocab_size=50_000, tokenizer_sha256="0" * 64,
                              target_bytes=1 << 27, params_hash="bench")
    (folder / "manifest.json").write_bytes(manifest_bytes(manifest))
    return manifest


def webdataset_lookup(folder: Path, manifest: dict, doc_id: str) -> str | None:
    import webdataset as wds

    urls = [str(folder / s["path"]) for s in manifest["shards"]]
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        if json.loads(sample["json"])["doc_id"] == doc_id:
            return str(sample["__key__"])
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2_000_000, help="values per sample for the drift kernel")
    ap.add_argument("--docs", type=int, default=40_000, help="documents in the shard dataset")
    ap.add_argument("--docs-per-shard", type=int, default=5_000)
    ap.add_argument("--lookups", type=int, default=5, help="documents looked up per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from scipy.stats import ks_2samp

    from pipelines.ops.lineage import locate_in_shards
    from pipelines.ops.monitor import ks_distance
    from sharding.format import read_manifest

    rng = np.random.default_rng(args.seed)
    a, b = rng.lognormal(5, 1, args.n), rng.lognormal(5.05, 1.02, args.n)
    t_ours, ours = median_seconds(lambda: ks_distance(a, b), args.repeats)
    t_scipy, ref = median_seconds(lambda: ks_2samp(a, b, method="asymp").statistic, args.repeats)
    assert abs(float(ours) - float(ref)) < 1e-12, (ours, ref)
    print(f"drift KS distance, {args.n:,} vs {args.n:,} values: tokenmill {t_ours * 1e3:.1f} ms, "
          f"scipy ks_2samp {t_scipy * 1e3:.1f} ms, ratio {t_scipy / t_ours:.2f}x (statistic {float(ours):.5f})")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifest = write_dataset(folder, args.docs, args.docs_per_shard, args.seed)
        uri = f"file://{folder / 'manifest.json'}"
        parsed = read_manifest(uri)
        picks = np.random.default_rng(args.seed + 1).integers(0, args.docs, args.lookups)
        targets = [f"doc-{int(i):08d}" for i in picks]

        def ours_all() -> list[str]:
            keys = []
            for t in targets:
                position = locate_in_shards(parsed, uri, t)
                if position is None:
                    raise LookupError(f"locate_in_shards found no shard holding {t}")
                keys.append(position.key)
            return keys

        def wds_all() -> list[str | None]:
            return [webdataset_lookup(folder, manifest, t) for t in targets]

        t_ours, keys = median_seconds(ours_all, args.repeats)
        t_wds, ref_keys = median_seconds(wds_all, args.repeats)
        assert keys == ref_keys, (keys, ref_keys)
        mb = manifest["total_bytes"] / 2**20
        print(f"lineage shard lookup, {args.docs:,} docs in {manifest['n_shards']} shards ({mb:,.0f} MiB), "
              f"{args.lookups} lookups: tokenmill {t_ours * 1e3 / args.lookups:.1f} ms/lookup, webdataset scan "
              f"{t_wds * 1e3 / args.lookups:.1f} ms/lookup, ratio {t_wds / t_ours:.1f}x")


if __name__ == "__main__":
    main()
