"""Building the SparkSession (local by default) and the Spark-side table I/O every stage shares."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
from pyiceberg.table import Table
from pyspark.sql import DataFrame, SparkSession

from pipelines import lake
from pipelines.config import Config, SparkConfig
from pipelines.errors import MissingDependencyError, StageInputError
from pipelines.lake.files.spark import read_table_files, read_units_df, write_files

log = logging.getLogger(__name__)

# Settings tokenmill's own code relies on (Arrow batch size, UTC, adaptive execution); applied where neither
# spark-submit (--conf, spark-defaults.conf) nor params.yaml sets them. Arrow batches handed to mapInArrow: big
# enough to amortize Python overhead, small enough for 2 cores/24 GiB. Shuffle partitions are left to Spark:
# adaptive execution coalesces them to what the cluster and the data need.
REQUIRED_CONF = {
    "spark.sql.execution.arrow.maxRecordsPerBatch": "4096",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.pythonUDF.arrow.enabled": "true",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
}
# Spark's JVM logging for the CLI's own session: WARN and up, one line each (see the file)
LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")
# Python workers forked from a daemon that has imported the task-side modules (pipelines/lake/daemon/spark.py);
# not under spark-submit, whose --py-files may ship a newer copy of the code than the executors' install.
# Spark keeps one daemon per distinct worker environment, and SQL's Arrow tasks add
# SPARK_SIMPLIFIED_TRACEBACK=1 (spark.sql.execution.pyspark.udf.simplifiedTraceback.enabled, on by default) to
# the environment of plain RDD tasks (ingest's): giving every task that variable lets one daemon, preloaded
# once, serve both.
DAEMON_MODULE = "pipelines.lake.daemon.spark"
# Defaults of the CLI's own (local) session only; a spark-submit'ed job keeps Spark's own defaults.
LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{LOG4J_CONFIG}",
    "spark.python.worker.reuse": "true",
    "spark.python.daemon.module": DAEMON_MODULE,
    "spark.executorEnv.SPARK_SIMPLIFIED_TRACEBACK": "1",
}
DEFAULT_CONF = {**REQUIRED_CONF, **LOCAL_CONF}
# settings logged once per application
LOGGED_KEYS = ("spark.submit.deployMode", "spark.driver.memory", "spark.executor.memory", "spark.executor.cores",
               "spark.executor.instances", "spark.sql.shuffle.partitions", "spark.sql.adaptive.enabled")
_logged_apps: set[str] = set()


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


def build_session(cfg: SparkConfig, *, start_workers: bool = False) -> SparkSession:
    """The SparkSession a stage runs in; Java is checked first.

    Who decides the cluster settings, in order: an existing session (a notebook, a test, `run --follow`) is
    used as it is; under `spark-submit` (its Python gateway is in the environment) the master, deploy mode and
    every `--conf` / spark-defaults.conf setting come from Spark, and only REQUIRED_CONF fills keys left unset;
    otherwise (the CLI's own session) `cfg.master`, `cfg.driver_memory` and `cfg.conf` apply over DEFAULT_CONF
    (`cfg.conf` last, so its keys win). The effective master
    and key settings are logged once per application. `start_workers`: when this call starts the CLI's own
    session, it also starts that session's Python workers in the background (`start_python_workers`).
    """
    if has_active_session():
        active = SparkSession.builder.getOrCreate()  # no options: the running session stays as it is
        _log_settings(active, "an existing session")
        return active
    check_java()
    if "PYSPARK_GATEWAY_PORT" in os.environ:
        spark = _submitted_session(cfg)
        origin = "spark-submit"
    else:
        os.environ.setdefault("PYSPARK_PYTHON", _python())
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = SparkSession.builder.master(cfg.master).appName(cfg.app_name)
        conf = {**DEFAULT_CONF, "spark.driver.memory": cfg.driver_memory, **_progress_conf(), **cfg.conf}
        for key, value in conf.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        origin = "params.yaml (spark.master, spark.conf)"
        if start_workers:
            start_python_workers(spark)
    spark.sparkContext.setLogLevel("ERROR")
    _log_settings(spark, origin)
    return spark


def has_active_session() -> bool:
    """Whether this process already runs a SparkContext (build_session would then return its session)."""
    from pyspark import SparkContext

    return SparkContext._active_spark_context is not None


def start_python_workers(spark: SparkSession) -> threading.Thread:
    """Start the session's Python worker daemon in the background, by a one-task job whose task does
    nothing: the daemon's start (with tokenmill's daemon, its preloading) then overlaps the driver's work
    before its first job, and the worker it forks waits in Spark's idle pool (spark.python.worker.reuse) for
    the first real task. Best effort: a failure is logged and the first real task starts the daemon."""

    def start() -> None:
        try:
            spark.sparkContext.parallelize([0], 1).foreach(lambda _: None)
        except Exception as exc:  # a stopped session, a lost executor: nothing depends on this job
            log.debug("starting the Python workers ahead of the first task failed: %s", exc)

    thread = threading.Thread(target=start, name="tokenmill-python-workers", daemon=True)
    thread.start()
    return thread


def _submitted_session(cfg: SparkConfig) -> SparkSession:
    """The session of a spark-submit'ed job: Spark's own configuration, with REQUIRED_CONF for unset keys."""
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # connects to spark-submit's JVM, whose system properties hold --conf
    submitted = SparkConf()
    builder = SparkSession.builder
    if not submitted.contains("spark.app.name"):
        builder = builder.appName(cfg.app_name)
    for key, value in {**REQUIRED_CONF, **_progress_conf()}.items():
        if not submitted.contains(key):
            builder = builder.config(key, value)
    if cfg.conf or cfg.master != SparkConfig().master:
        log.info("spark-submit owns the cluster settings: params.yaml spark.master=%s and spark.conf keys %s "
                 "are not applied", cfg.master, sorted(cfg.conf))
    return builder.getOrCreate()


def _progress_conf() -> dict[str, str]:
    """Spark's console progress bar only where someone watches it, a terminal. Redrawn with carriage returns,
    it runs together into one long line in log files and `dvc repro` output; there, each stage logs a start
    and a done line instead (pipelines.stages)."""
    return {"spark.ui.showConsoleProgress": "true" if sys.stderr.isatty() else "false"}


def effective_settings(spark: SparkSession) -> dict[str, str]:
    """The master, default parallelism and LOGGED_KEYS of a running session (unset keys left out)."""
    sc = spark.sparkContext
    conf = sc.getConf()
    out: dict[str, str] = {"master": str(sc.master), "defaultParallelism": str(sc.defaultParallelism)}
    for key in LOGGED_KEYS:
        value = spark.conf.get(key, None) if key.startswith("spark.sql.") else conf.get(key, None)
        if value is not None:
            out[key] = str(value)
    return out


def _log_settings(spark: SparkSession, origin: str) -> None:
    app = spark.sparkContext.applicationId
    if app in _logged_apps:
        return
    _logged_apps.add(app)
    settings = " ".join(f"{k}={v}" for k, v in effective_settings(spark).items())
    log.info("spark application %s (settings from %s): %s", app, origin, settings)


def _python() -> str:
    import sys

    return sys.executable


def read_table_df(spark: SparkSession, table: Table, snapshot_id: int | None = None,
                  columns: Sequence[str] | None = None, tasks: int | None = None) -> DataFrame:
    """The table's current (or given) snapshot as a DataFrame: the driver plans the data files (pyiceberg
    scan), the tasks read them with pyarrow (`pipelines.lake.files.spark`); only `columns` when given; at
    most `tasks` tasks when given (default: one per file or row-group unit)."""
    return read_table_files(spark, table, snapshot_id, columns, tasks)


def read_data_files_df(spark: SparkSession, table: Table, files: Sequence[str],
                       columns: Sequence[str] | None = None) -> DataFrame:
    """Some data files of `table` (URIs, e.g. those appended since a snapshot) with the table's schema."""
    schema = table.schema().as_arrow()
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    return read_units_df(spark, [(f, -1) for f in files], schema, lake.table_s3(table))


def read_input_df(spark: SparkSession, cfg: Config, table: Table, columns: Sequence[str] | None = None
                  ) -> DataFrame:
    """A stage's input table: its current snapshot, or the snapshot tagged by `lake.read_version`."""
    if not cfg.lake.read_version:
        return read_table_df(spark, table, columns=columns)
    from pipelines.ops.versions import resolve_version

    name = table.name()[-1]
    snapshot_id = resolve_version(cfg, cfg.lake.read_version).snapshot_id(name)
    if snapshot_id is None:
        raise StageInputError(f"version {cfg.lake.read_version!r} has no snapshot of table {name}")
    log.info("reading %s at version %s (snapshot %s)", name, cfg.lake.read_version, snapshot_id)
    return read_table_df(spark, table, snapshot_id, columns)


def write_df_files(df: DataFrame, table: Table, arrow_schema: pa.Schema, *, prefix: str) -> tuple[list[str], int]:
    """Write each partition of `df` (columns matching `arrow_schema`) as one Parquet file under the table's
    data folder, with the table's field ids; return the file URIs and the row count. Nothing is committed here."""
    return write_files(df, lake.data_dir(table), lake.file_schema(table, arrow_schema), prefix=prefix,
                       s3=lake.table_s3(table))
