"""The registry of filters and the `curate.filters` config union built from it.

`FilterSpec` validates one item of `curate.filters` against whatever is registered when it is validated:
the item's `name` picks the filter model, and errors read exactly as a pydantic discriminated union's
(`curate.filters.0.length.min_word: extra`, `Input tag 'x' found using 'name' does not match any of the
expected tags: ...`). The built-in filters register themselves on first use, in `BUILTIN_FILTERS` order;
`register(cls)` adds another (docs/extending.md). A filter's module must be importable wherever the config
is unpickled (Spark executors), so a filter outside this package registers itself when imported.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import operator
import typing
from functools import lru_cache
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field, GetCoreSchemaHandler, GetJsonSchemaHandler, TypeAdapter
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from pipelines.filters.base import BaseFilter
from schemas.signals import SIGNAL_NAMES

# "module:class" of each built-in filter; the order is the one of the "expected tags" in config errors
BUILTIN_FILTERS: tuple[str, ...] = (
    "pipelines.filters.length:LengthFilter",
    "pipelines.filters.gopher_quality:GopherQualityFilter",
    "pipelines.filters.gopher_repetition:GopherRepetitionFilter",
    "pipelines.filters.c4_quality:C4QualityFilter",
    "pipelines.filters.fineweb_quality:FineWebQualityFilter",
    "pipelines.filters.bad_words:BadWordsFilter",
    "pipelines.filters.language:LanguageFilter",
    "pipelines.filters.pii:PIIFilter",
)

F = TypeVar("F", bound=BaseFilter)

_FILTERS: dict[str, type[BaseFilter]] = {}


def _filter_name(cls: type[BaseModel]) -> str:
    """The `name` a filter model answers to: its `name` field's single Literal value, also its default."""
    field = cls.model_fields.get("name")
    args = typing.get_args(field.annotation) if field is not None else ()
    if field is None or typing.get_origin(field.annotation) is not typing.Literal or len(args) != 1:
        raise TypeError(f"filter {cls.__qualname__}: needs a field `name: Literal['<name>'] = '<name>'`")
    if field.default != args[0] or not isinstance(args[0], str):
        raise TypeError(f"filter {cls.__qualname__}: `name` must default to its Literal value {args[0]!r}")
    return args[0]


def _checked_name(cls: type[BaseFilter]) -> str:
    """The filter's name, after checking the rest of the contract (TypeError naming what is wrong)."""
    if not (isinstance(cls, type) and issubclass(cls, BaseFilter)):
        raise TypeError(f"filter {cls!r}: must be a subclass of pipelines.filters.BaseFilter")
    name = _filter_name(cls)
    if cls.model_config.get("extra") != "forbid":
        raise TypeError(f"filter {name!r}: its model must keep extra='forbid'")
    if inspect.isabstract(cls):
        raise TypeError(f"filter {name!r}: defines no apply(ctx) method")
    signals = getattr(cls, "signals", None)
    if not isinstance(signals, tuple) or not all(isinstance(s, str) for s in signals):
        raise TypeError(f"filter {name!r}: `signals` must be a tuple of column names")
    unknown = [s for s in signals if s not in SIGNAL_NAMES]
    if unknown:
        raise TypeError(f"filter {name!r}: signals {unknown} are not columns of schemas/signals.py")
    return name


def register(cls: type[F]) -> type[F]:
    """Add a filter model to `curate.filters`; returns `cls` (so it also works as a class decorator).

    Raises TypeError when `cls` breaks the contract (not a `BaseFilter` with `extra="forbid"`, no Literal
    `name`, no `apply`, `signals` not a tuple of `schemas.signals` column names) and ValueError when another
    filter has its name. Registering the same class twice is a no-op.
    """
    name = _checked_name(cls)
    _builtins()
    if _FILTERS.get(name, cls) is not cls:
        raise ValueError(f"filter name {name!r} is taken by {_FILTERS[name].__qualname__}")
    _FILTERS[name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a filter added by `register` (for tests and notebooks); unknown names are ignored."""
    _FILTERS.pop(name, None)


@lru_cache(maxsize=1)
def _builtins() -> None:
    for entry in BUILTIN_FILTERS:
        module, _, attr = entry.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        _FILTERS.setdefault(_checked_name(cls), cls)


def registered() -> dict[str, type[BaseFilter]]:
    """Name -> filter model of every registered filter, built-ins first, in registration order."""
    _builtins()
    return dict(_FILTERS)


@lru_cache(maxsize=16)
def _union_adapter(models: tuple[type[BaseFilter], ...]) -> TypeAdapter[Any]:
    if len(models) == 1:
        return TypeAdapter(models[0])
    union: Any = functools.reduce(operator.or_, models)  # A | B | ... of the classes, built at run time
    return TypeAdapter(Annotated[union, Field(discriminator="name")])


def _validate(value: Any) -> Any:
    return _union_adapter(tuple(registered().values())).validate_python(value)


class _RegisteredFilter:
    """Pydantic hook validating a value as the union of the filters registered at validation time."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        # serialized as the filter model it is (any-type inference), so dumps and params hashes are unchanged
        return core_schema.no_info_plain_validator_function(_validate)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        union_schema = _union_adapter(tuple(registered().values())).core_schema
        return handler(union_schema)


FilterSpec = Annotated[BaseFilter, _RegisteredFilter()]
"""One item of `curate.filters`: any registered filter, chosen by its `name`."""
