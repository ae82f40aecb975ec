"""Shared machinery of table schemas: one field list gives the pyiceberg Schema (fixed field ids) and the
pyarrow schema that executors write Parquet files with.

pyiceberg's pyarrow bridge (which imports pyarrow.dataset and with it pandas) is imported only when an Arrow
schema is first asked for: Spark tasks import table definitions and need not pay for it at start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.types import NestedField


@dataclass(frozen=True)
class TableDef:
    """A table's name, its Iceberg schema with fixed field ids, and its partition spec."""

    name: str
    schema: Schema
    partition_spec: PartitionSpec = field(default=UNPARTITIONED_PARTITION_SPEC)
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def arrow_schema(self) -> pa.Schema:
        """The pyarrow schema of data files, without field-id metadata: writers add the ids of the live table
        (`pipelines.lake.file_schema`), which pyiceberg may have renumbered at create_table."""
        from pyiceberg.io.pyarrow import schema_to_pyarrow

        fields = [pa.field(f.name, f.type, nullable=f.nullable) for f in schema_to_pyarrow(self.schema)]
        return pa.schema(fields)

    def empty(self) -> pa.Table:
        return self.arrow_schema.empty_table()


def make_schema(*fields: NestedField) -> Schema:
    ids = [f.field_id for f in fields]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate field ids in {ids}")
    return Schema(*fields)
