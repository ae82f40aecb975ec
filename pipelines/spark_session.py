"""Building the SparkSession (local by default) and the Spark-side table I/O every stage shares."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator

import pyarrow as pa
from pyiceberg.table import Table
from pyspark.sql import DataFrame, SparkSession

from pipelines import lake
from pipelines.config import Config, SparkConfig
from pipelines.errors import MissingDependencyError, StageInputError

log = logging.getLogger(__name__)

# Arrow batches handed to mapInArrow: big enough to amortize Python overhead, small enough for 2 cores/24 GiB.
DEFAULT_CONF = {
    "spark.sql.execution.arrow.maxRecordsPerBatch": "4096",
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "true",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.memory": "4g",
    "spark.sql.execution.pythonUDF.arrow.enabled": "true",
    "spark.python.worker.reuse": "true",
}


def check_java() -> None:
    """Raise MissingDependencyError (one line) unless a Java 17+ runtime is on PATH or JAVA_HOME."""
    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else None
    java = java if java and os.path.exists(java) else shutil.which("java")
    if not java:
        raise MissingDependencyError("Java 17 or newer is required by Spark but no 'java' was found on PATH")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.SubprocessError) as exc:
        raise MissingDependencyError(f"cannot run {java}: {exc}") from exc
    first = out.splitlines()[0] if out else ""
    try:
        major = int(first.split('"')[1].split(".")[0])
    except (IndexError, ValueError):
        return
    if major < 17:
        raise MissingDependencyError(f"Spark needs Java 17 or newer; found {first.strip()}")


def build_session(cfg: SparkConfig) -> SparkSession:
    """Get or create the SparkSession for `cfg` (`local[*]` by default); Java is checked first."""
    check_java()
    os.environ.setdefault("PYSPARK_PYTHON", _python())
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.master(cfg.master).appName(cfg.app_name)
    for key, value in {**DEFAULT_CONF, **cfg.conf}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _python() -> str:
    import sys

    return sys.executable


def read_table_df(spark: SparkSession, table: Table, snapshot_id: int | None = None) -> DataFrame:
    """The table's current (or given) snapshot as a DataFrame, read from its Parquet data files directly."""
    files = lake.data_files(table, snapshot_id)
    schema = table.schema().as_arrow()
    if not files:
        from pyspark.sql.pandas.types import from_arrow_schema

        return spark.createDataFrame([], from_arrow_schema(schema))
    return spark.read.parquet(*files)


def read_input_df(spark: SparkSession, cfg: Config, table: Table) -> DataFrame:
    """A stage's input table: its current snapshot, or the snapshot tagged by `lake.read_version`."""
    if not cfg.lake.read_version:
        return read_table_df(spark, table)
    from pipelines.versions import resolve_version

    name = table.name()[-1]
    snapshot_id = resolve_version(cfg, cfg.lake.read_version).snapshot_id(name)
    if snapshot_id is None:
        raise StageInputError(f"version {cfg.lake.read_version!r} has no snapshot of table {name}")
    log.info("reading %s at version %s (snapshot %s)", name, cfg.lake.read_version, snapshot_id)
    return read_table_df(spark, table, snapshot_id)


FILES_SCHEMA = "path string, rows long"


def _write_partitions(directory: str, arrow_schema: pa.Schema, prefix: str):
    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        pieces = [b for b in batches if b.num_rows]
        if not pieces:
            return
        table = pa.Table.from_batches(pieces).select(arrow_schema.names).cast(arrow_schema)
        path = lake.write_data_file(directory, table, prefix=prefix)
        yield pa.RecordBatch.from_pydict({"path": [path], "rows": [table.num_rows]})

    return write


def write_df_files(df: DataFrame, table: Table, arrow_schema: pa.Schema, *, prefix: str) -> tuple[list[str], int]:
    """Write each partition of `df` (columns matching `arrow_schema`) as one Parquet file under the table's
    data folder; return the file URIs and the row count. Nothing is committed here."""
    out = df.mapInArrow(_write_partitions(lake.data_dir(table), arrow_schema, prefix), FILES_SCHEMA).collect()
    return [r["path"] for r in out], sum(r["rows"] for r in out)
