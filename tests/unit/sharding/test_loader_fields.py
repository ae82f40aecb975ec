"""The loader's one table of output fields and its options object: the docs name every field, the derived
tuples follow the table, and `num_workers=` is shorthand for the options field, never a silent override."""

from __future__ import annotations

from pathlib import Path

import pytest

from sharding import LoaderOptions, TokenLoader
from sharding.loader.buffers import BufferPool
from sharding.loader.fields import FIELDS, OUTPUTS, TABLE
from sharding.loader.options import with_num_workers

DOCS = Path(__file__).resolve().parents[3] / "docs" / "loader.md"


def test_every_field_of_the_table_is_documented_in_the_docstring_and_docs() -> None:
    doc = TokenLoader.__doc__ or ""
    page = DOCS.read_text()
    for f in TABLE:
        assert f"``{f.name}``" in doc, f.name
        assert f"| `{f.name}` | {f.dtype} |" in page, f.name
        for extra in f.extra:
            assert f"``{extra}``" in doc and f"`{extra}`" in page, extra


def test_fields_and_outputs_follow_the_table() -> None:
    assert FIELDS[0] == "input_ids" and set(OUTPUTS) <= set(FIELDS)
    assert OUTPUTS == tuple(f.name for f in TABLE if f.packed and f.dtype == "int64")
    assert BufferPool(1).take(2, 3).keys() == set(OUTPUTS)


def test_num_workers_keyword_is_shorthand_for_the_options_field() -> None:
    assert with_num_workers(None, None) == LoaderOptions()
    assert with_num_workers(None, 3).num_workers == 3
    kept = with_num_workers(LoaderOptions(producers=5), 2)
    assert (kept.num_workers, kept.producers) == (2, 5)
    assert with_num_workers(LoaderOptions(num_workers=2), 2).num_workers == 2
    with pytest.raises(ValueError, match="contradicts options.num_workers=1"):
        with_num_workers(LoaderOptions(num_workers=1), 2)
    with pytest.raises(ValueError, match="num_workers"):
        with_num_workers(None, -1)
    with pytest.raises(ValueError, match="prefetch"):
        LoaderOptions(prefetch=0)
    with pytest.raises(ValueError, match="workers"):
        LoaderOptions(workers=2)  # type: ignore[call-arg]
