"""Kinds of source as plug-ins: the `SourceKind` contract and the registry that picks one per source type.

A kind plans work units for a source on the driver, reads one unit in a task, and settles the task results
of its units into the next ingest state (what makes ingest exactly-once: the state is committed in the same
Iceberg snapshot summary as the data). The runner (`pipelines.sources.plan`, `pipelines.sources.tasks`)
knows no kind by name. Built-in kinds register themselves on first use, in `BUILTIN_KINDS` order (which is
also the order their accepted files are committed in); `register(kind)` adds another (docs/extending.md). A
kind's module must be importable on Spark executors, which look the kind up again to read a unit.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pyarrow as pa

from pipelines.sources.state import IngestState
from pipelines.sources.units import Unit, UnitResult

if TYPE_CHECKING:
    from pipelines.sources.plan import Plan, Source
    from pipelines.sources.tasks import TaskContext

# "module:class" of each built-in kind
BUILTIN_KINDS: tuple[str, ...] = (
    "pipelines.sources.object_kind:ObjectKind",
    "pipelines.sources.kafka_kind:KafkaKind",
)

Batch = tuple[pa.Table, pa.Table]  # (raw_docs rows, quarantine rows)


@dataclass(frozen=True)
class Reading:
    """A unit being read: `batches` (raw_docs, quarantine) to write, and `outcome()`, called once they are
    all consumed, giving the kind's own `UnitResult` fields (`bytes_read`, where the read stopped, ...)."""

    batches: Iterator[Batch]
    outcome: Callable[[], dict[str, Any]]


@runtime_checkable
class SourceKind(Protocol):
    """The contract of a kind of source.

    - `name`: the `kind` of the units it makes (unique among registered kinds);
    - `source_types`: the config `type`s it serves (`cfg.sources[i].type`);
    - `plan(index, src, state, plan)`: on the driver, append units for source `index` to `plan.units` (and
      any baseline state to `plan`), skipping what `state` says was ingested; may raise StageInputError;
    - `read(unit, src, ctx)`: in a task, a `Reading` of the unit; every record read must come out as a
      raw_docs or a quarantine row (counts conserve); an error of the store that may pass is raised as
      `pipelines.sources.objects.TransientReadError` (the task retries, then defers the unit);
    - `settle(results, sources, state, run_id, counts)`: on the driver, the results (not deferred) of this
      kind's units accepted for commit, with `state` (the next ingest state) and `counts` updated for them.
    """

    name: str
    source_types: tuple[str, ...]

    def plan(self, index: int, src: Source, state: IngestState, plan: Plan) -> None: ...

    def read(self, unit: Unit, src: Source, ctx: TaskContext) -> Reading: ...

    def settle(self, results: list[UnitResult], sources: list[Source], state: IngestState, run_id: str,
               counts: Counter[str]) -> list[UnitResult]: ...


_KINDS: dict[str, SourceKind] = {}


def _checked(kind: SourceKind) -> SourceKind:
    if not isinstance(kind, SourceKind):
        raise TypeError(f"source kind {kind!r}: needs name, source_types, plan, read and settle")
    if not isinstance(kind.source_types, tuple) or not kind.source_types:
        raise TypeError(f"source kind {kind.name!r}: `source_types` must be a non-empty tuple of config types")
    return kind


def register(kind: SourceKind) -> SourceKind:
    """Add a kind (an instance); returns it. Raises TypeError when it breaks the contract and ValueError
    when another kind has its name or serves one of its source types. Registering it twice is a no-op."""
    _builtins()
    _checked(kind)
    other = _KINDS.get(kind.name)
    if other is not None and other is not kind:
        raise ValueError(f"source kind name {kind.name!r} is taken by {type(other).__qualname__}")
    for k in _KINDS.values():
        taken = set(k.source_types) & set(kind.source_types)
        if k is not kind and taken:
            raise ValueError(f"source types {sorted(taken)} are served by kind {k.name!r}")
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a kind added by `register` (for tests); unknown names are ignored."""
    _KINDS.pop(name, None)


@lru_cache(maxsize=1)
def _builtins() -> None:
    for entry in BUILTIN_KINDS:
        module, _, attr = entry.partition(":")
        kind = _checked(getattr(importlib.import_module(module), attr)())
        _KINDS.setdefault(kind.name, kind)


def registered() -> dict[str, SourceKind]:
    """Name -> kind of every registered kind, built-ins first, in registration order."""
    _builtins()
    return dict(_KINDS)


def for_source(src: Source) -> SourceKind:
    """The kind serving `src.type`; ValueError when none does."""
    for kind in registered().values():
        if src.type in kind.source_types:
            return kind
    raise ValueError(f"no source kind serves type {src.type!r}")


def for_unit(unit: Unit) -> SourceKind:
    """The kind that made `unit`; ValueError when it is not registered (here)."""
    try:
        return registered()[unit.kind]
    except KeyError:
        raise ValueError(f"no source kind {unit.kind!r} is registered") from None
