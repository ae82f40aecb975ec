"""Iceberg I/O through pyiceberg: the catalog, the six tables, Parquet data files written by tasks, and
driver-side commits whose snapshot summary records the tokenmill version, params hash and git commit.

Executors write Parquet files under the table's data folder, every column (nested ones included) carrying the
field id of the loaded table's live schema (`file_schema`), so engines that resolve columns by id (Daft, DuckDB)
read them; the driver adds them with `add_files` in one transaction per stage, so a stage either lands whole or
not at all.

Importing this package imports neither pyiceberg nor `schemas` (they are imported where the driver uses them):
Spark tasks import `pipelines.lake.files.spark` below it, and a Python worker should not spend its start on
the catalog code it never runs.
"""

from __future__ import annotations

import logging
import subprocess
import uuid
from collections.abc import Iterable
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from pipelines.lake import summary as summary_keys
from pipelines.storage import S3Options, delete_tree, filesystem, local_path, parquet_dataset

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table
    from pyiceberg.types import NestedField

    from pipelines.config import Config, LakeConfig
    from schemas import TableDef

log = logging.getLogger(__name__)

# the Arrow field metadata key pyarrow writes as a Parquet column's field id
FIELD_ID = b"PARQUET:field_id"


def open_catalog(lake: LakeConfig) -> Catalog:
    """Load the configured catalog (default: SQLite under lake.root) and make sure the namespace exists."""
    from pyiceberg.catalog import load_catalog
    from pyiceberg.exceptions import NamespaceAlreadyExistsError

    props = lake.catalog_properties()
    if props.get("type") == "sql" and props.get("uri", "").startswith("sqlite:///"):
        Path(props["uri"].removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if props.get("warehouse", "").startswith("file://"):
        Path(local_path(props["warehouse"])).mkdir(parents=True, exist_ok=True)
    catalog = load_catalog(lake.catalog_name, **props)
    try:
        catalog.create_namespace(lake.namespace)
    except NamespaceAlreadyExistsError:
        pass
    return catalog


def ensure_table(catalog: Catalog, namespace: str, table: TableDef | str) -> Table:
    """Open the table, creating it (schema, partition spec, properties) when missing.

    A table created by an older tokenmill gains the columns added to its definition since (schema
    evolution: Iceberg assigns them its next free ids and updates the name mapping that data files are
    read through); rows written before read them as null. Columns are only ever added, never changed.
    """
    from pyiceberg.exceptions import NoSuchTableError

    from schemas import TABLES

    tdef = TABLES[table] if isinstance(table, str) else table
    ident = (namespace, tdef.name)
    try:
        loaded = catalog.load_table(ident)
        have = {f.name for f in loaded.schema().fields}
        missing = [f for f in tdef.schema.fields if f.name not in have]
        if missing:
            log.info("table %s.%s: adding columns %s", namespace, tdef.name, [f.name for f in missing])
            with loaded.update_schema() as update:
                for f in missing:
                    update.add_column(f.name, f.field_type, doc=f.doc)
        return loaded
    except NoSuchTableError:
        log.info("creating table %s.%s", namespace, tdef.name)
        return catalog.create_table(
            ident, schema=tdef.schema, partition_spec=tdef.partition_spec, properties=tdef.properties
        )


def load_table(catalog: Catalog, namespace: str, name: str) -> Table | None:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return catalog.load_table((namespace, name))
    except NoSuchTableError:
        return None


def data_files(table: Table, snapshot_id: int | None = None) -> list[str]:
    """The Parquet data files of a snapshot (default: current), for Spark to read directly."""
    if table.current_snapshot() is None and snapshot_id is None:
        return []
    return [task.file.file_path for task in table.scan(snapshot_id=snapshot_id).plan_files()]


def data_dir(table: Table) -> str:
    return table.location().rstrip("/") + "/data"


def file_schema(table: Table, schema: pa.Schema) -> pa.Schema:
    """`schema` (the columns tasks write into `table`'s data files, types unchanged) with every field, list
    elements and struct members included, carrying the field id of the same column in the table's live
    Iceberg schema as `PARQUET:field_id` metadata. The ids come from the loaded table, never from schemas/:
    pyiceberg renumbers nested ids at create_table and schema evolution hands out new ones.

    Raises ValueError naming a column the table does not have or whose shape differs.
    """
    live = table.schema()
    fields = []
    for f in schema:
        try:
            column = live.find_field(f.name)
        except ValueError:
            raise ValueError(f"table {'.'.join(table.name())} has no column {f.name!r}") from None
        fields.append(_with_field_id(f, column))
    return pa.schema(fields, metadata=schema.metadata)


def _with_field_id(field: pa.Field, column: NestedField) -> pa.Field:
    from pyiceberg.types import ListType, StructType

    kind, ice = field.type, column.field_type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        if not isinstance(ice, ListType):
            raise ValueError(f"column {column.name!r} is {ice} in the table, a list in the data")
        element = _with_field_id(kind.value_field, ice.element_field)
        kind = pa.large_list(element) if pa.types.is_large_list(kind) else pa.list_(element)
    elif pa.types.is_struct(kind):
        if not isinstance(ice, StructType):
            raise ValueError(f"column {column.name!r} is {ice} in the table, a struct in the data")
        members = []
        for member in (kind.field(i) for i in range(kind.num_fields)):
            inner = ice.field_by_name(member.name)
            if inner is None:
                raise ValueError(f"column {column.name!r} has no member {member.name!r} in the table")
            members.append(_with_field_id(member, inner))
        kind = pa.struct(members)
    metadata = {**(field.metadata or {}), FIELD_ID: str(column.field_id).encode()}
    return pa.field(field.name, kind, nullable=field.nullable, metadata=metadata)


def table_s3(table: Table) -> S3Options:
    """How tasks reach the table's files: the endpoint and region of its catalog's S3 properties (keys stay
    with each executor's credential chain)."""
    props = table.io.properties
    return S3Options(endpoint=props.get("s3.endpoint") or None, region=props.get("s3.region") or None)


# scratch folder URI -> the S3 settings of the lake it belongs to (see scratch_dir, scratch_s3)
_scratch_s3: dict[str, S3Options] = {}


def scratch_dir(lake: LakeConfig, name: str) -> str:
    """A fresh folder URI for one run's temporary data under `lake.scratch` (local or S3); see remove_tree.
    Data written under it (`pipelines.lake.files.spark.materialize`) uses the lake's S3 settings."""
    uri = f"{lake.scratch_uri().rstrip('/')}/{name}-{uuid.uuid4().hex[:12]}"
    _scratch_s3[uri] = lake.task_s3()
    return uri


def scratch_s3(uri: str) -> S3Options | None:
    """The S3 settings of the scratch folder holding `uri` (None: not under a scratch_dir of this process)."""
    for base, options in _scratch_s3.items():
        if uri == base or uri.startswith(base + "/"):
            return options
    return None


def remove_tree(uri: str) -> None:
    """Delete a folder (local) or every object under a prefix (S3); a missing one is fine, a failure is logged."""
    options = scratch_s3(uri)
    _scratch_s3.pop(uri, None)
    try:
        delete_tree(uri, options)
    except OSError as exc:
        log.warning("could not remove scratch data %s: %s", uri, exc)


def read_files(files: Iterable[str], columns: list[str], s3: S3Options | None = None) -> pa.Table:
    """`columns` of Parquet data files (URIs, local or S3 reached with `s3`) read on the driver, as one table:
    for a few files whose rows the driver needs anyway (an increment's doc_ids). Raises ValueError for no files."""
    return parquet_dataset(list(files), s3).to_table(columns=columns)


def scratch_encodings(schema: pa.Schema) -> dict[str, Any]:
    """pq.write_table settings of a scratch file (a persisted step or a checkpoint: read back once or twice by
    the run that wrote it, then deleted), where write and read time count more than size: LZ4 for the text-like
    columns (about 1.35x zstd's size, compressed and decompressed 2-3x faster), and hash payloads (binary and
    list columns: MinHash signatures, band keys) stored plain, neither compressed nor dictionary-encoded, since
    random bytes gain nothing from either."""
    payloads = {f.name for f in schema if pa.types.is_binary(f.type) or pa.types.is_list(f.type)}
    return {"compression": {f.name: "none" if f.name in payloads else "lz4" for f in schema},
            "use_dictionary": [f.name for f in schema if f.name not in payloads]}


def write_data_file(directory: str, table: pa.Table, *, prefix: str, s3: S3Options | None = None,
                    row_group_bytes: int | None = None, scratch: bool = False) -> str | None:
    """Write one Parquet data file under `directory` (URI) and return its URI; None for an empty table.
    `row_group_bytes`: row groups of about that many bytes of Arrow data (default: pyarrow's, 1 Mi rows), so
    that a reader can decode a file's row groups on several threads and stream them. `scratch`: the file is
    scratch data (`scratch_encodings`), else zstd, the tables' codec.

    Columns carry the Parquet field ids present in `table`'s schema metadata (see `file_schema`). The file is written under a temporary name and renamed (local), so a killed task leaves no partial
    file that a later commit could pick up. Names carry a random suffix: retried tasks never collide.
    """
    if table.num_rows == 0:
        return None
    fs, path = filesystem(directory, s3)
    rows = None if row_group_bytes is None else max(1, -(-row_group_bytes * table.num_rows // max(table.nbytes, 1)))
    name = f"{prefix}-{uuid.uuid4().hex}.parquet"
    final = f"{path}/{name}"
    encodings = scratch_encodings(table.schema) if scratch else {"compression": "zstd"}
    if isinstance(fs, pafs.LocalFileSystem):  # S3 needs no folders (pyarrow would write marker objects)
        fs.create_dir(path, recursive=True)
        tmp = f"{path}/.{name}.tmp"
        pq.write_table(table, tmp, filesystem=fs, row_group_size=rows, **encodings)
        fs.move(tmp, final)
        return f"file://{final}"
    pq.write_table(table, final, filesystem=fs, row_group_size=rows, **encodings)
    return directory.split("://", 1)[0] + "://" + final


@cache
def git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def tokenmill_version() -> str:
    try:
        return version("tokenmill")
    except PackageNotFoundError:
        return "0+unknown"


def snapshot_summary(cfg: Config, stage: str, run_id: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Snapshot summary properties every tokenmill commit records."""
    props = {
        summary_keys.VERSION: tokenmill_version(),
        summary_keys.PARAMS_HASH: cfg.params_hash(),
        summary_keys.STAGE: stage,
        summary_keys.RUN_ID: run_id,
    }
    sha = git_sha()
    if sha:
        props[summary_keys.GIT_SHA] = sha
    props.update(extra or {})
    return props


def commit_files(
    table: Table, files: Iterable[str], summary: dict[str, str], *, overwrite: bool = False
) -> int | None:
    """Add data files to `table` in one transaction; with overwrite, the table's current rows are replaced.

    Returns the new current snapshot id. Nothing is committed if an exception escapes.
    """
    from pyiceberg.expressions import AlwaysTrue

    files = [f for f in files if f]
    with table.transaction() as tx:
        if overwrite and table.current_snapshot() is not None:
            tx.delete(AlwaysTrue(), snapshot_properties=summary)
        if files:
            tx.add_files(files, snapshot_properties=summary)
        elif not overwrite:
            # an empty append still records the summary (offsets/ledger advance, run happened)
            tx.append(table.schema().as_arrow().empty_table(), snapshot_properties=summary)
    table.refresh()
    snap = table.current_snapshot()
    return snap.snapshot_id if snap else None


def last_summary(table: Table, key_prefix: str = summary_keys.PREFIX) -> dict[str, str]:
    """The tokenmill properties of the table's current snapshot ({} for a table never committed)."""
    snap = table.current_snapshot()
    if snap is None or snap.summary is None:
        return {}
    return {k: v for k, v in snap.summary.additional_properties.items() if k.startswith(key_prefix)}


def read_table(table: Table, columns: tuple[str, ...] = ("*",), snapshot_id: int | None = None) -> pa.Table:
    """Read (a projection of) a table on the driver; for small tables and tests."""
    if table.current_snapshot() is None and snapshot_id is None:
        return table.schema().as_arrow().empty_table()
    return table.scan(selected_fields=columns, snapshot_id=snapshot_id).to_arrow()
