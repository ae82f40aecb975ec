"""Persisted steps of a Spark job, so that a run killed midway continues where it stopped.

Each step's result is Parquet in its own folder under one run folder (a URI: local or S3), written and read
by the tasks through pyarrow (`pipelines.lake.files.spark`, no Hadoop filesystem) with scratch encodings
(`pipelines.lake.scratch_encodings`: quick to write and read, since the run deletes them); a step is complete when its
folder has the `_SUCCESS` marker, written by the driver last, after every task's file, and naming those
files and their schema (files of failed task attempts are not named, so never read). A SIGKILL during a
step leaves it incomplete and a re-run recomputes that step only; a step whose input rows are unique by a
key (`resume_by`) recomputes only the rows that no finished task file of the interrupted run holds.
Without a folder, steps are local checkpoints (nothing survives the process). The caller picks the folder,
keyed by whatever makes results comparable.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
from pyspark.sql.types import StringType, StructField, StructType

from dedup.steps import disjoint_files

if TYPE_CHECKING:
    import pyarrow.dataset as ds
    from pyarrow import fs as pafs

    from pipelines.storage import S3Options

log = logging.getLogger(__name__)

MARKER = "_SUCCESS"
# (columns, only these doc_ids or None) -> the rows with those columns, batch by batch (e.g. a StepReader)
ColumnReader = Callable[[list[str], "pa.Array | None"], pa.RecordBatchReader]
ArrowMap = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]
# inside a task: a written file's rows -> counts kept in the file's footer under FILE_NOTES (see `materialize`)
FileNotes = Callable[[pa.Table], dict[str, int]]
FILE_NOTES = b"tokenmill.step_notes"
# a step file's row groups: small enough that a StepReader decodes a file on several threads and streams it (a
# task's one big row group was decoded whole, on one thread, before its rows could be filtered)
ROW_GROUP_BYTES = 16 << 20


def _fs(uri: str, s3: S3Options | None) -> tuple[pafs.FileSystem, str]:
    from pipelines.storage import filesystem

    return filesystem(uri, s3)


@dataclass(frozen=True)
class StepReader:
    """A ColumnReader of a complete step's rows matching `where`, read with pyarrow (column projection,
    multi-threaded, no Spark job) wherever it is called: a plain picklable value (the step's file URIs, their
    schema, the filter and the S3 settings), so it works on the driver and inside a task alike."""

    files: tuple[str, ...]
    schema: pa.Schema
    where: pc.Expression | None = None
    s3: S3Options | None = None

    def __call__(self, columns: list[str], doc_ids: pa.Array | None = None) -> pa.RecordBatchReader:
        from pipelines.storage import parquet_dataset

        if not self.files:
            return pa.RecordBatchReader.from_batches(pa.schema([self.schema.field(c) for c in columns]), [])
        dataset = parquet_dataset(self.files, self.s3, self.schema)
        if doc_ids is not None:
            return self._lookup(dataset, columns, doc_ids)
        return dataset.scanner(columns=columns, filter=self.where).to_reader()

    def _lookup(self, dataset: ds.Dataset, columns: list[str], doc_ids: pa.Array) -> pa.RecordBatchReader:
        """The rows of `doc_ids` (matching `where`), a few among many (the candidates' texts): the doc_id column
        of every row group is read first and matched against `doc_ids` once, then only the row groups holding
        some are read, each filtered by its own few doc_ids. A filter by all of `doc_ids` at once would build
        their hash set again for every batch scanned."""
        groups = [g for fragment in dataset.get_fragments() for g in fragment.split_by_row_group()]
        schema = pa.schema([self.schema.field(c) for c in columns])
        ids = [g.to_table(schema=self.schema, columns=["doc_id"], filter=self.where).column("doc_id") for g in groups]
        hit = pc.is_in(pa.chunked_array([c for part in ids for c in part.chunks], pa.string()), value_set=doc_ids)
        tasks, at = [], 0
        for group, part in zip(groups, ids, strict=True):
            found = part.filter(hit.slice(at, len(part)))
            at += len(part)
            if len(found):
                among = pc.field("doc_id").isin(found.combine_chunks())
                tasks.append((group, among if self.where is None else self.where & among))

        def read(task: tuple[ds.Fragment, pc.Expression]) -> pa.Table:
            return task[0].to_table(schema=self.schema, columns=columns, filter=task[1])

        def batches() -> Iterator[pa.RecordBatch]:
            # row groups side by side, as many as pyarrow's CPU pool has threads (what each keeps is its few rows)
            with ThreadPoolExecutor(max_workers=pa.cpu_count()) as pool:
                for table in pool.map(read, tasks):
                    yield from table.to_batches()

        return pa.RecordBatchReader.from_batches(schema, batches())


def _footer_notes(file_notes: FileNotes, rows: pa.Table) -> dict[bytes, bytes]:
    """Inside a task: a file's notes as its footer's key-value pair."""
    return {FILE_NOTES: json.dumps(file_notes(rows)).encode()}


def _file_keys(key: str, s3: S3Options | None) -> ArrowMap:
    """mapInArrow function: (path, key) of every row of the files named by the input rows' `path`."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        for units in batches:
            for uri in units.column("path").to_pylist():
                fs, path = _fs(uri, s3)
                with fs.open_input_file(path) as f:
                    for batch in pq.ParquetFile(f).iter_batches(columns=[key]):
                        paths = pa.array([uri] * batch.num_rows, pa.string())
                        yield pa.RecordBatch.from_arrays([paths, batch.column(0)], names=["path", key])

    return run


def remove_folder(uri: str, s3: S3Options | None = None) -> None:
    """Delete a folder (local) or every object under a prefix (S3); a missing one is fine."""
    from pipelines.storage import delete_tree

    delete_tree(uri, s3)


def subfolders(uri: str, s3: S3Options | None = None) -> list[str]:
    """Names of the folders directly under `uri` (none when it is missing)."""
    from pyarrow import fs as pafs

    fs, path = _fs(uri, s3)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)


class Steps:
    """Persisted steps under one folder URI (local or S3, reached with `s3`); `reused` names the steps a run
    read back instead of computing; `on_done(name)` is called after a step is written (crash tests hook a
    failpoint there; `on_done(f"{name}.file")` is also called inside each task of a step written with
    `resume_by`, once its file exists). A step may carry `notes` (a small dict of ints its tasks reported, e.g.
    through an accumulator, or counted on each file: `file_notes`), kept in its marker so that a re-run
    reading the step back gets them too. `resumed_rows` maps a step computed after an interrupted attempt
    to the rows it reused from that attempt's files."""

    def __init__(self, spark: SparkSession, folder: str | None,
                 on_done: Callable[[str], None] | None = None, s3: S3Options | None = None) -> None:
        self.spark = spark
        self.folder = folder.rstrip("/") if folder else None
        self.s3 = s3
        self.reused: list[str] = []
        self.resumed_rows: dict[str, int] = {}
        self._on_done = on_done or (lambda name: None)
        self._notes: dict[str, dict[str, int]] = {}

    def done(self, name: str) -> bool:
        from pyarrow import fs as pafs

        if self.folder is None:
            return False
        fs, path = _fs(self.path(name) + "/" + MARKER, self.s3)
        return bool(fs.get_file_info(path).type == pafs.FileType.File)

    def path(self, name: str) -> str:
        if self.folder is None:
            raise ValueError("no folder for persisted steps")
        return f"{self.folder}/{name}"

    def materialize(self, name: str, compute: Callable[[], DataFrame], *, transform: ArrowMap | None = None,
                    schema: StructType | None = None, notes: Callable[[], dict[str, int]] | None = None,
                    resume_by: str | None = None, file_notes: FileNotes | None = None) -> DataFrame:
        """The step's result: read back when complete, else computed, written and read back. With `transform`
        (a mapInArrow function whose rows have Spark schema `schema`), `compute()` gives its input and each
        task transforms and writes its rows in one pass to the Python workers. `notes()`, called once the
        rows are computed, gives the step's notes (see `notes`).

        `resume_by`: a column whose value is unique among the input rows and which every output row carries
        from its input row (so the transform works row by row). An incomplete step is then resumed rather
        than recomputed: the files its interrupted run's tasks finished are kept (at most one file per key:
        of files sharing a key, as a duplicate task attempt's do, the larger is kept and the other ignored),
        their keys are anti-joined out of the input, and only the rest is transformed and written; the
        marker names old and new files. `file_notes(rows)`, counted inside each task on its file's rows and
        stored in the file's footer, are summed over the files the marker names into the step's notes (so a
        resumed step's notes count its reused files too)."""
        if self.folder is None:
            df = compute()
            if transform is not None and schema is not None:
                df = df.mapInArrow(transform, schema)
            df = df.localCheckpoint()
            self._notes[name] = notes() if notes is not None else {}
            return df
        if self.done(name):
            log.info("reusing persisted step %s", name)
            self.reused.append(name)
            return self._read(name)
        self._write(name, compute(), transform, schema, notes, resume_by, file_notes)
        self._on_done(name)
        return self._read(name)

    def notes(self, name: str) -> dict[str, int]:
        """The notes of a step this run materialized or read back ({} when it had none)."""
        if name not in self._notes and self.folder is not None and self.done(name):
            self._notes[name] = self._marker_json(name).get("notes", {})
        return dict(self._notes.get(name, {}))

    def _write(self, name: str, df: DataFrame, transform: ArrowMap | None = None,
               schema: StructType | None = None, notes: Callable[[], dict[str, int]] | None = None,
               resume_by: str | None = None, file_notes: FileNotes | None = None) -> None:
        from functools import partial

        from pipelines.lake.files.spark import read_units_df, write_files

        folder = self.path(name)
        arrow = to_arrow_schema(schema if transform is not None and schema is not None else df.schema,
                                timezone="UTC", prefers_large_types=False)
        reused: dict[str, tuple[int, dict[str, int]]] = {}
        if resume_by is None:
            remove_folder(folder, self.s3)  # what an interrupted attempt at this step left
        else:
            reused = self._finished_files(name, arrow, resume_by)
            if reused:
                done = read_units_df(self.spark, [(f, -1) for f in reused], pa.schema([arrow.field(resume_by)]),
                                     self.s3)
                df = df.join(done, resume_by, "left_anti").select(*df.columns)
                self.resumed_rows[name] = sum(rows for rows, _ in reused.values())
                log.info("resuming persisted step %s: reusing %d rows in %d files of an interrupted run",
                         name, self.resumed_rows[name], len(reused))
        metadata = None if file_notes is None else partial(_footer_notes, file_notes)
        written = None if resume_by is None else partial(self._on_done, f"{name}.file")
        context = self.spark.sparkContext
        context.setJobDescription(f"persisted step {name}")  # the job's name in Spark's UI and event log
        try:
            new, _ = write_files(df, folder, arrow, prefix="part", s3=self.s3, transform=transform,
                                 metadata=metadata, written=written, row_group_bytes=ROW_GROUP_BYTES,
                                 scratch=True)
        finally:
            context.setJobDescription(None)  # type: ignore[arg-type]
        files = [*reused, *new]
        schema_bytes = arrow.serialize().to_pybytes()
        self._notes[name] = notes() if notes is not None else {}
        if file_notes is not None:
            counted = [n for _, n in reused.values()] + [n for _, n in self._footers(new).values()]
            for key in sorted({k for n in counted for k in n}):
                self._notes[name][key] = self._notes[name].get(key, 0) + sum(n.get(key, 0) for n in counted)
        marker = json.dumps({"files": files, "schema": base64.b64encode(schema_bytes).decode(),
                             "notes": self._notes[name]})
        fs, path = _fs(folder, self.s3)
        if folder.startswith("s3://"):  # an S3 PUT is atomic: the marker is whole or absent (and S3 needs no folder)
            with fs.open_output_stream(f"{path}/{MARKER}") as out:
                out.write(marker.encode())
            return
        fs.create_dir(path, recursive=True)
        with fs.open_output_stream(f"{path}/.{MARKER}.tmp") as out:
            out.write(marker.encode())
        fs.move(f"{path}/.{MARKER}.tmp", f"{path}/{MARKER}")  # a rename: atomic on a local disk

    def _footers(self, files: list[str], arrow: pa.Schema | None = None) -> dict[str, tuple[int, dict[str, int]]]:
        """(rows, file notes) of each readable Parquet file of `files` (with the columns of `arrow` when
        given); a file that cannot be read, or has other columns, is left out with a warning."""
        import pyarrow.parquet as pq

        out: dict[str, tuple[int, dict[str, int]]] = {}
        for uri in files:
            fs, path = _fs(uri, self.s3)
            try:
                meta = pq.read_metadata(path, filesystem=fs)
                columns = [(f.name, f.type) for f in meta.schema.to_arrow_schema()]
            except (OSError, pa.ArrowException) as exc:
                log.warning("ignoring unreadable step file %s: %s", uri, exc)
                continue
            if arrow is not None and columns != [(f.name, f.type) for f in arrow]:
                log.warning("ignoring step file %s: other columns than the step's", uri)
                continue
            notes = json.loads((meta.metadata or {}).get(FILE_NOTES, b"{}"))
            out[uri] = (meta.num_rows, {str(k): int(v) for k, v in notes.items()})
        return out

    def _finished_files(self, name: str, arrow: pa.Schema, key: str) -> dict[str, tuple[int, dict[str, int]]]:
        """The files an interrupted attempt at step `name` left that a resumed run keeps, with their rows
        and notes: readable files with the step's columns (a task writes its file whole or not at all), at
        most one holding each `key` (preferring more rows, then the name), so no row is counted twice."""
        from pyarrow import fs as pafs

        fs, path = _fs(self.path(name), self.s3)
        scheme = "file" if isinstance(fs, pafs.LocalFileSystem) else self.path(name).split("://", 1)[0]
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        found = self._footers(sorted(f"{scheme}://{i.path}" for i in infos if i.type == pafs.FileType.File
                                     and i.base_name.endswith(".parquet") and not i.base_name.startswith(".")), arrow)
        files = sorted(found, key=lambda f: (-found[f][0], f))
        if len(files) > 1:
            kept = disjoint_files(files, self._shared_keys(files, arrow.field(key)))
            if len(kept) < len(files):
                log.warning("step %s: ignoring %d files of an interrupted run whose %s values another file "
                            "holds (duplicate task attempts)", name, len(files) - len(kept), key)
            files = kept
        return {f: found[f] for f in files}

    def _shared_keys(self, files: list[str], key: pa.Field) -> list[list[str]]:
        """The groups of `files` that hold one same `key` value (one Spark job over the key column)."""
        from pipelines.lake.files.spark import rows_frame

        units = rows_frame(self.spark, [(f,) for f in files], StructType([StructField("path", StringType())]),
                           len(files))
        out = StructType([StructField("path", StringType()), *from_arrow_schema(pa.schema([key])).fields])
        pairs = units.mapInArrow(_file_keys(key.name, self.s3), out)
        groups = (pairs.groupBy(key.name).agg(F.sort_array(F.collect_set("path")).alias("paths"))
                  .where(F.size("paths") > 1).select("paths").distinct().collect())
        return [list(r["paths"]) for r in groups]

    def _marker_json(self, name: str) -> dict:  # type: ignore[type-arg]
        fs, path = _fs(self.path(name) + "/" + MARKER, self.s3)
        with fs.open_input_stream(path) as stream:
            return dict(json.loads(stream.read()))

    def _marker(self, name: str) -> tuple[list[str], pa.Schema]:
        marker = self._marker_json(name)
        return marker["files"], pa.ipc.read_schema(pa.py_buffer(base64.b64decode(marker["schema"])))

    def _read(self, name: str) -> DataFrame:
        from pipelines.lake.files.spark import read_units_df

        files, schema = self._marker(name)
        return read_units_df(self.spark, [(f, -1) for f in files], schema, self.s3)

    def reader(self, name: str, where: pc.Expression | None = None) -> StepReader:
        """A StepReader of a complete step's rows matching `where`: for a consumer that needs a few columns
        of the result in one place (the driver, or one task it is shipped to)."""
        files, schema = self._marker(name)
        return StepReader(tuple(files), schema, where, self.s3)

    def last_round(self, prefix: str) -> tuple[int, DataFrame] | None:
        """The highest complete round `<prefix>-NNN` and its result, or None."""
        if self.folder is None:
            return None
        rounds = sorted(int(n.rsplit("-", 1)[1]) for n in subfolders(self.folder, self.s3)
                        if n.startswith(f"{prefix}-") and self.done(n))
        if not rounds:
            return None
        name = f"{prefix}-{rounds[-1]:03d}"
        self.reused.append(name)
        return rounds[-1], self._read(name)

    def remove(self) -> None:
        if self.folder is not None:
            remove_folder(self.folder, self.s3)


def checkpoint(df: DataFrame, checkpoint_dir: str | None) -> DataFrame:
    """`df` with its plan cut: written as Parquet under `checkpoint_dir` (a scratch URI, local or s3://, by
    the tasks through pyarrow, so no Hadoop filesystem or shared disk is needed) and read back; without a
    directory, a local checkpoint on the executors. The caller removes the directory."""
    if not checkpoint_dir:
        return df.localCheckpoint()
    from pipelines.lake.files.spark import materialize  # the pyarrow table I/O lives with the other Spark I/O

    return materialize(df, checkpoint_dir)
