"""The driver's read of a few data files (`lake.read_files`) and a persisted step's reader (`StepReader`)
read the same Parquet files on S3 (moto) as on a local disk, through one dataset helper."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from dedup.steps.spark import StepReader
from pipelines import lake
from pipelines.storage import S3Options, filesystem, s3_client

pytestmark = pytest.mark.integration

SCHEMA = pa.schema([("doc_id", pa.string()), ("reason", pa.string())])


def _write(uris: list[str], s3: S3Options | None) -> None:
    for part, uri in enumerate(uris):
        ids = [f"d{part}{i}" for i in range(4)]
        fs, path = filesystem(uri, s3)
        pq.write_table(pa.table({"doc_id": ids, "reason": [None, "short", None, None]}, schema=SCHEMA), path,
                       filesystem=fs, row_group_size=2)


def test_read_files_and_step_reader_give_the_same_rows_on_s3_as_locally(s3_endpoint: str, tmp_path: Path) -> None:
    s3 = S3Options(endpoint=s3_endpoint)
    s3_client(s3).create_bucket(Bucket="parquet-reads")
    local = [(tmp_path / f"part-{p}.parquet").as_uri() for p in range(2)]
    remote = [f"s3://parquet-reads/step/part-{p}.parquet" for p in range(2)]
    _write(local, None)
    _write(remote, s3)
    wanted = pa.array(["d01", "d02", "d13", "none"])
    seen = []
    for uris, options in ((local, None), (remote, s3)):
        ids = lake.read_files(uris, ["doc_id"], options).column("doc_id").to_pylist()
        reader = StepReader(tuple(uris), SCHEMA, pc.field("reason").is_null(), options)
        passed = reader(["doc_id"], None).read_all().column("doc_id").to_pylist()
        looked_up = sorted(reader(["doc_id", "reason"], wanted).read_all().column("doc_id").to_pylist())
        seen.append((ids, passed, looked_up))
    assert seen[0] == seen[1]
    assert seen[1] == (["d00", "d01", "d02", "d03", "d10", "d11", "d12", "d13"],
                       ["d00", "d02", "d03", "d10", "d12", "d13"], ["d02", "d13"])
