"""Source identities: every input record is ingested once, checked on the tables themselves.

A record's identity is where it came from: (source type, object URI or topic, partition, line/row/offset).
raw_docs and quarantine together hold each identity once per version of its input: an object read again
because it changed since (its ledger entry moved to another run) may repeat its lines once per run that read
it; a Kafka offset may repeat only after a run reset a partition (`reset: earliest` on a recreated topic).
Anything else is a duplicate, however it arose (two runs, a retried commit, a file added twice). The audit
counts them with Spark aggregates (`pipelines.ops.audit.spark.duplicate_identities`).
"""

from __future__ import annotations

import io
from collections import defaultdict

import pyarrow.parquet as pq
from pyiceberg.table import Table

from pipelines import lake
from pipelines.lake import summary as keys
from pipelines.sources.state import _ingest_snapshots, _props
from pipelines.storage import filesystem

KEY_COLUMNS = ("source_type", "source_uri", "source_partition", "source_offset")


def ingesting_runs(raw_docs: Table) -> dict[str, set[str]]:
    """Object URI -> every run that ingested a version of it, from the ledgers of all ingest commits."""
    runs: dict[str, set[str]] = defaultdict(set)
    seen: set[str] = set()
    for snap in _ingest_snapshots(raw_docs):
        uri = _props(snap).get(keys.LEDGER)
        if not uri or uri in seen:
            continue
        seen.add(uri)
        fs, path = filesystem(uri, lake.table_s3(raw_docs))
        try:
            with fs.open_input_stream(path) as f:
                table = pq.read_table(io.BytesIO(f.read()), columns=["uri", "run_id"])
        except OSError:
            continue  # a ledger gone: the run's entries are in every later ledger that kept them
        for u, r in zip(table.column("uri").to_pylist(), table.column("run_id").to_pylist(), strict=True):
            runs[u].add(r)
    return runs


def allowed_repeats_of_objects(raw_docs: Table) -> dict[str, int]:
    """Object URI -> how many runs ingested a version of it: the times its lines may appear (one row per object,
    read from the ledgers, not from the data)."""
    return {uri: len(runs) for uri, runs in ingesting_runs(raw_docs).items()}


def kafka_offsets_were_reset(raw_docs: Table) -> bool:
    """Whether any ingest run reset a Kafka partition (then an offset may repeat once per run that read it)."""
    return any(int(_props(s).get(keys.KAFKA_OFFSETS_RESET, "0")) > 0
               for s in _ingest_snapshots(raw_docs))
