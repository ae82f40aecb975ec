"""Tables and scratch data read and written by Spark tasks through pyarrow, never through a Hadoop filesystem.

The driver plans the file list (a pyiceberg scan of a table's snapshot, or the files a `materialize` wrote) and
distributes it to tasks as data; each task opens its files with a pyarrow filesystem (local or S3 through
`pipelines.storage.filesystem`, with the S3 settings of the table's catalog or of the lake's scratch) and yields
Arrow batches. So `s3://` and local warehouses behave the same and
Spark needs no extra jars, and no path has to exist on every node except through its URI.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType

from pipelines import lake
from pipelines.storage import S3Options, filesystem

if TYPE_CHECKING:
    import numpy as np
    from pyiceberg.table import Table

log = logging.getLogger(__name__)

BATCH_ROWS = 4096
# Spark types rather than DDL strings: a DDL string is parsed by the JVM (a py4j round trip) every time it is used
UNIT_SCHEMA = StructType([StructField("path", StringType()), StructField("row_group", IntegerType())])
FILES_SCHEMA = StructType([StructField("path", StringType()), StructField("rows", LongType())])
# inside a task: a file's rows -> key-value pairs for its Parquet footer
FileMetadata = Callable[[pa.Table], dict[bytes, bytes]]
# a file with more row groups than this is read by several tasks, this many row groups each
ROW_GROUPS_PER_TASK = 4


class DeleteFilesError(RuntimeError):
    """A table snapshot has row-level delete files, which tokenmill's readers do not apply."""


def table_units(table: Table, snapshot_id: int | None = None) -> list[tuple[str, int]]:
    """(file URI, first row group or -1 for the whole file) read units of a snapshot (default: current).

    Files whose Iceberg metadata lists more than ROW_GROUPS_PER_TASK row groups (split offsets) are split
    into several units. Raises DeleteFilesError when the snapshot has row-level deletes.
    """
    if table.current_snapshot() is None and snapshot_id is None:
        return []
    units: list[tuple[str, int]] = []
    for task in table.scan(snapshot_id=snapshot_id).plan_files():
        if task.delete_files:
            raise DeleteFilesError(f"table {'.'.join(table.name())} has row-level delete files "
                                   f"({len(task.delete_files)} for {task.file.file_path}); rewrite it first")
        groups = len(task.file.split_offsets or ())
        if groups > ROW_GROUPS_PER_TASK:
            units += [(task.file.file_path, g) for g in range(0, groups, ROW_GROUPS_PER_TASK)]
        else:
            units.append((task.file.file_path, -1))
    return units


def _reader(read_unit: Callable[[str, int], Iterator[pa.RecordBatch]]
            ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """mapInArrow function: the rows `read_unit(path, row_group)` yields for each unit of each input batch."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for units in batches:
            for path, group in zip(units.column("path").to_pylist(), units.column("row_group").to_pylist(),
                                   strict=True):
                yield from read_unit(path, group)

    return run


def _read_unit(uri: str, group: int | None, schema: pa.Schema, s3: S3Options | None) -> Iterator[pa.RecordBatch]:
    fs, path = filesystem(uri, s3)
    try:
        with fs.open_input_file(path) as f:
            pf = pq.ParquetFile(f)
            present = [name for name in schema.names if name in pf.schema_arrow.names]
            groups = None
            if group is not None and group >= 0:
                groups = list(range(group, min(group + ROW_GROUPS_PER_TASK, pf.num_row_groups)))
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=groups, columns=present):
                yield _conform(batch, schema)
    except (OSError, pa.ArrowException) as exc:
        raise OSError(f"{uri}: cannot read Parquet data file: {exc}") from exc


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """`batch` with exactly the columns of `schema`, in order and cast; missing columns (added to the table
    after the file was written) are nulls."""
    arrays = []
    for field in schema:
        idx = batch.schema.get_field_index(field.name)
        col = batch.column(idx) if idx >= 0 else pa.nulls(batch.num_rows, field.type)
        arrays.append(col if col.type == field.type else pc.cast(col, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def read_units_df(spark: SparkSession, units: Sequence[tuple[str, int]], schema: pa.Schema,
                  s3: S3Options | None = None, tasks: int | None = None) -> DataFrame:
    """A DataFrame of the rows of Parquet read `units` (file URI, row group or -1), with Arrow schema `schema`
    (columns a file lacks are nulls); S3 reached with `s3` (default: each executor's environment). One task
    per unit, or at most `tasks` tasks, each reading consecutive units; an empty list gives an empty frame."""
    def read_unit(target: pa.Schema) -> Callable[[str, int], Iterator[pa.RecordBatch]]:
        return lambda path, group: _read_unit(path, group, target, s3)

    return _map_units(spark, units, schema, tasks, read_unit)


def _map_units(spark: SparkSession, units: Sequence[tuple[str, int]], schema: pa.Schema, tasks: int | None,
               read_unit: Callable[[pa.Schema], Callable[[str, int], Iterator[pa.RecordBatch]]]) -> DataFrame:
    """A DataFrame of what `read_unit(arrow schema)(path, row_group)` yields for each unit, in one task per
    unit or at most `tasks` tasks; its schema is `schema` as Spark types it."""
    plain = pa.schema([pa.field(f.name, f.type) for f in schema])
    spark_schema = from_arrow_schema(plain)
    if not units:
        return spark.createDataFrame([], spark_schema)
    target = to_arrow_schema(spark_schema, timezone="UTC", prefers_large_types=False)
    unit_df = rows_frame(spark, units, UNIT_SCHEMA, min(len(units), tasks or len(units)))
    return unit_df.mapInArrow(_reader(read_unit(target)), spark_schema)


def rows_frame(spark: SparkSession, rows: Sequence[tuple[object, ...]], schema: StructType,
               partitions: int) -> DataFrame:
    """A DataFrame of a few driver-side rows (tuples of str/int/float/None in `schema`'s order) in
    `partitions` partitions, made without a Python task: the pickled rows are unpickled in the JVM, as
    pyspark's createDataFrame does after its own per-row conversion, which would otherwise run in a Python
    worker in each task of every job reading the frame (a round trip ~15 ms per task here), and costs the
    driver a PythonRDD (~10 ms). Like `sparkContext.parallelize(rows).toDF(schema)` the frame is an RDD scan,
    whose size Spark does not guess: a local relation or `spark.range` would be sized by its few rows, and
    the planner would then broadcast what is read through it, however large."""
    context = spark.sparkContext
    pickled = context.parallelize(list(rows), max(1, partitions))._jrdd  # batches of pickled tuples
    jvm = context._jvm
    assert jvm is not None
    objects = jvm.SerDeUtil.toJavaArray(jvm.SerDeUtil.pythonToJava(pickled, True))
    return DataFrame(spark._jsparkSession.applySchemaToPythonRDD(objects.rdd(), schema.json()), spark)


# (the key columns of some rows) -> a boolean mask of the rows wanted; runs inside the reading tasks
RowMatch = Callable[[pa.Table], "np.ndarray"]


def _read_matching_unit(uri: str, group: int | None, schema: pa.Schema, keys: Sequence[str], match: RowMatch,
                        s3: S3Options | None) -> Iterator[pa.RecordBatch]:
    fs, path = filesystem(uri, s3)
    try:
        with fs.open_input_file(path) as f:
            pf = pq.ParquetFile(f)
            names = pf.schema_arrow.names
            key_cols = [k for k in keys if k in names]
            rest = [n for n in schema.names if n in names and n not in key_cols]
            first = group if group is not None and group >= 0 else 0
            last = min(first + ROW_GROUPS_PER_TASK, pf.num_row_groups) if group is not None and group >= 0 \
                else pf.num_row_groups
            for g in range(first, last):
                key_rows = pf.read_row_group(g, columns=key_cols)
                hit = pa.array(match(_conform_table(key_rows, pa.schema([schema.field(k) for k in keys]))))
                if not pc.any(hit).as_py():
                    continue  # the other columns of this row group are never read
                rows = key_rows.filter(hit)
                if rest:
                    other = pf.read_row_group(g, columns=rest).filter(hit)
                    for name in rest:
                        rows = rows.append_column(other.schema.field(name), other.column(name))
                for batch in rows.to_batches(max_chunksize=BATCH_ROWS):
                    yield _conform(batch, schema)
    except (OSError, pa.ArrowException) as exc:
        raise OSError(f"{uri}: cannot read Parquet data file: {exc}") from exc


def _conform_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_batches([_conform(b, schema) for b in table.to_batches()], schema=schema)


def read_matching_df(spark: SparkSession, units: Sequence[tuple[str, int]], schema: pa.Schema, *,
                     keys: Sequence[str], match: RowMatch, s3: S3Options | None = None,
                     tasks: int | None = None) -> DataFrame:
    """As `read_units_df`, only the rows `match` wants: each task reads the `keys` columns (in `schema`) of a
    row group, calls `match` on them (a picklable function returning a boolean mask), and reads the other
    columns of that row group only when some row matched. For looking up a few rows in a large table: what
    leaves the task (and crosses to the JVM) is only the matching rows."""
    def read_unit(target: pa.Schema) -> Callable[[str, int], Iterator[pa.RecordBatch]]:
        return lambda path, group: _read_matching_unit(path, group, target, list(keys), match, s3)

    return _map_units(spark, units, schema, tasks, read_unit)


def read_table_files(spark: SparkSession, table: Table, snapshot_id: int | None = None,
                     columns: Sequence[str] | None = None, tasks: int | None = None) -> DataFrame:
    """The table's current (or given) snapshot as a DataFrame read by the tasks (pyarrow), optionally only
    `columns` (in that order), in at most `tasks` tasks when given."""
    schema = table.schema().as_arrow()
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    return read_units_df(spark, table_units(table, snapshot_id), schema, lake.table_s3(table), tasks)


def write_partition(batches: Iterator[pa.RecordBatch], directory: str, schema: pa.Schema, prefix: str,
                    s3: S3Options | None, metadata: FileMetadata | None = None,
                    row_group_bytes: int | None = None, scratch: bool = False) -> tuple[str, pa.Table] | None:
    """Inside a task: a partition's rows (in `schema`) as one data file under `directory`; its path and rows,
    or None for an empty partition (no file). `metadata(rows)` gives key-value pairs for the file's footer;
    `row_group_bytes`, `scratch`: see lake.write_data_file."""
    pieces = [b for b in batches if b.num_rows]
    if not pieces:
        return None
    table = pa.Table.from_batches(pieces).select(schema.names).cast(schema)
    if metadata is not None:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata(table)})
    path = lake.write_data_file(directory, table, prefix=prefix, s3=s3, row_group_bytes=row_group_bytes,
                                scratch=scratch)
    return None if path is None else (path, table)


def _write_partitions(directory: str, schema: pa.Schema, prefix: str, s3: S3Options | None,
                      metadata: FileMetadata | None = None, written: Callable[[], None] | None = None,
                      row_group_bytes: int | None = None, scratch: bool = False,
                      ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        out = write_partition(batches, directory, schema, prefix, s3, metadata, row_group_bytes, scratch)
        if out is not None:
            if written is not None:
                written()
            yield pa.RecordBatch.from_pydict({"path": [out[0]], "rows": [out[1].num_rows]})

    return write


def write_files(df: DataFrame, directory: str, schema: pa.Schema, *, prefix: str, s3: S3Options | None = None,
                transform: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]] | None = None,
                metadata: FileMetadata | None = None, written: Callable[[], None] | None = None,
                row_group_bytes: int | None = None, scratch: bool = False) -> tuple[list[str], int]:
    """Write each non-empty partition of `df` (columns of `schema`) as one Parquet file under `directory`
    (a URI: local or S3, reached with `s3`); return the file URIs and the row count. `transform`, a
    mapInArrow function, turns each partition's batches into the rows written (columns of `schema`) in the
    same Python worker: one round trip to Python instead of two. `metadata(rows)` (inside the task) gives
    key-value pairs stored in each file's footer; `written()` is called in the task once its file exists;
    `row_group_bytes`, `scratch` (files this run reads back and deletes): see lake.write_data_file."""
    write = _write_partitions(directory, schema, prefix, s3, metadata, written, row_group_bytes, scratch)
    if transform is not None:
        produce, store = transform, write

        def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            return store(produce(batches))

    out = df.mapInArrow(write, FILES_SCHEMA).collect()
    return [r["path"] for r in out], sum(r["rows"] for r in out)


def materialize(df: DataFrame, directory: str) -> DataFrame:
    """Write `df` under `directory` (a scratch URI) and return a DataFrame that reads it back: the plan is cut
    there, like a reliable checkpoint, without a Hadoop filesystem. The caller removes `directory`."""
    schema = to_arrow_schema(df.schema, timezone="UTC", prefers_large_types=False)
    s3 = lake.scratch_s3(directory)
    files, rows = write_files(df, directory.rstrip("/") + f"/{uuid.uuid4().hex[:12]}", schema, prefix="part", s3=s3,
                              scratch=True)
    log.debug("materialized %d rows in %d files under %s", rows, len(files), directory)
    return read_units_df(df.sparkSession, [(f, -1) for f in files], schema, s3)
