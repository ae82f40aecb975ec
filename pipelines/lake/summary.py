"""The keys tokenmill records in Iceberg snapshot summaries, in one place: the stages write them, and the
incremental decisions, the audit, gc, lineage, versions and the loader's resolver read them.

Every key starts with `PREFIX`; per-stage counts are `key(name)` (ingest) or `COUNT_PREFIX + name` (curate).
"""

from __future__ import annotations

PREFIX = "tokenmill."


def key(name: str) -> str:
    """The summary key for `name` (a count or a tokenizer fact recorded under its own name)."""
    return PREFIX + name


# every commit (pipelines.lake.snapshot_summary)
VERSION = key("version")
PARAMS_HASH = key("params_hash")
STAGE = key("stage")
RUN_ID = key("run_id")
GIT_SHA = key("git_sha")

# incremental stages (pipelines.stages.snapshots)
INPUT_SNAPSHOT = key("input_snapshot_id")
STAGE_PARAMS = key("stage_params")
MODE = key("mode")
REBUILD_REASON = key("rebuild_reason")

# ingest (pipelines.sources.state, .plan, .identity)
RECORDS_READ = key("records_read")
OBJECTS_REWRITTEN = key("objects_rewritten")
KAFKA_OFFSETS_RESET = key("kafka_offsets_reset")
LEDGER = key("ingest.ledger")
LEDGER_SHA256 = key("ingest.ledger_sha256")
LEDGER_OBJECTS = key("ingest.ledger_objects")
KAFKA_OFFSETS = key("ingest.kafka_offsets")
CLEANED_RUNS = key("ingest.cleaned_runs")

# curate (pipelines.stages.curate)
CURATE_MODE = key("curate.mode")
RAW_SNAPSHOT = key("raw_snapshot_id")
DECISIONS_LINK = key("decisions_snapshot_id")
CLEAN_LINK = key("clean_snapshot_id")
INDEX_PARAMS = key("dedup_index.params")
COUNT_PREFIX = key("count.")

# tokenize (pipelines.stages.tokenize): the tokenizer facts are recorded under their own names, plus these
BOS = key("bos")
EOS = key("eos")

# shard (pipelines.stages.shard.publish)
MANIFEST_URI = key("manifest_uri")
MANIFEST_SHA256 = key("manifest_sha256")
TOKENIZER_SHA256 = key("tokenizer_sha256")
