"""Source identities: every input record is ingested once, checked on the tables themselves.

A record's identity is where it came from: (source type, object URI or topic, partition, line/row/offset).
raw_docs and quarantine together hold each identity once per version of its input: an object read again
because it changed since (its ledger entry moved to another run) may repeat its lines once per run that read
it; a Kafka offset may repeat only after a run reset a partition (`reset: earliest` on a recreated topic).
Anything else is a duplicate, however it arose (two runs, a retried commit, a file added twice).
"""

from __future__ import annotations

import io
from collections import defaultdict

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.table import Table

from pipelines import lake
from pipelines.sources.state import KEY_LEDGER, _ingest_snapshots, _props
from pipelines.storage import filesystem

KEY_COLUMNS = ("source_type", "source_uri", "source_partition", "source_offset")


def ingesting_runs(raw_docs: Table) -> dict[str, set[str]]:
    """Object URI -> every run that ingested a version of it, from the ledgers of all ingest commits."""
    runs: dict[str, set[str]] = defaultdict(set)
    seen: set[str] = set()
    for snap in _ingest_snapshots(raw_docs):
        uri = _props(snap).get(KEY_LEDGER)
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


def _resets(raw_docs: Table) -> bool:
    return any(int(_props(s).get(lake.SUMMARY_PREFIX + "kafka_offsets_reset", "0")) > 0
               for s in _ingest_snapshots(raw_docs))


def duplicate_identities(raw_docs: Table, quarantine: Table | None) -> tuple[int, list[str]]:
    """(number of rows beyond the first of an identity that is not allowed to repeat, up to 5 examples)."""
    parts = [lake.read_table(t, (*KEY_COLUMNS, "run_id")) for t in (raw_docs, quarantine) if t is not None]
    rows = pa.concat_tables([p.select([*KEY_COLUMNS, "run_id"]).cast(parts[0].select([*KEY_COLUMNS, "run_id"]).schema)
                             for p in parts]) if parts else None
    if rows is None or rows.num_rows == 0:
        return 0, []
    groups = rows.group_by(list(KEY_COLUMNS), use_threads=False).aggregate(
        [("run_id", "count"), ("run_id", "count_distinct")])
    suspicious = groups.filter(pc.greater(groups.column("run_id_count"), 1))
    if suspicious.num_rows == 0:
        return 0, []
    versions = ingesting_runs(raw_docs)
    resets = _resets(raw_docs)
    extra, examples = 0, list[str]()
    for row in suspicious.to_pylist():
        n, k = row["run_id_count"], row["run_id_count_distinct"]
        allowed = 1
        if row["source_type"] == "kafka":
            allowed = k if resets else 1
        elif k <= max(1, len(versions.get(row["source_uri"], ()))):
            allowed = k
        if n > allowed:
            extra += n - allowed
            if len(examples) < 5:
                where = row["source_uri"] if row["source_partition"] is None else \
                    f"{row['source_uri']}/{row['source_partition']}"
                examples.append(f"{where}@{row['source_offset']} x{n}")
    return extra, examples


def check(raw_docs: Table, quarantine: Table | None) -> tuple[bool, str]:
    """The audit's check: (ok, one-line detail)."""
    extra, examples = duplicate_identities(raw_docs, quarantine)
    if extra == 0:
        return True, "every source record (object + line, topic/partition/offset) ingested once per version"
    return False, f"{extra} record(s) ingested more than once: " + ", ".join(examples)
