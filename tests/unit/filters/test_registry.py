"""The filter plug-in contract: declared signals are schema columns, and a filter defined outside the package
(one class plus one `register` line, below) is accepted by the config and run by `curate_batch`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pydantic import BaseModel, ConfigDict, Field

from pipelines.config import load_config
from pipelines.errors import ConfigError
from pipelines.filters import (
    BaseFilter,
    BatchContext,
    Filter,
    FilterResult,
    curate_batch,
    register,
    registered,
)
from pipelines.filters.batch import BASE_SIGNALS, TextCounts
from pipelines.filters.config import LengthFilter, NormalizeConfig
from pipelines.filters.registry import unregister
from schemas.signals import SIGNAL_NAMES

ENGLISH = (
    "The mill by the river was built in 1732 and ground grain for the farms of the valley until 1951. "
    "It was restored by volunteers in 1998 and is now a museum that is open on summer weekends. "
    "Contact: mill@example.org or 192.168.1.20 for group visits, see [1] and [edit]."
)
TEXTS = [ENGLISH, "", "short one", "Ein kurzer deutscher Satz, der nicht englisch ist und etwas länger wird.",
         "word " * 60 + "\n" + "- item\n" * 5]  # fmt: skip


def test_every_registered_filter_declares_only_schema_signals() -> None:
    filters = registered()
    assert list(filters)[:8] == ["length", "gopher_quality", "gopher_repetition", "c4_quality",
                                 "fineweb_quality", "bad_words", "language", "pii"]  # fmt: skip
    for name, cls in filters.items():
        missing = [s for s in cls.signals if s not in SIGNAL_NAMES]
        assert not missing, f"filter {name!r} declares signals that schemas/signals.py lacks: {missing}"
        assert isinstance(cls.model_validate({}), Filter) and cls.model_validate({}).name == name
    assert set(BASE_SIGNALS) <= set(SIGNAL_NAMES)
    declared = [s for cls in filters.values() for s in cls.signals]
    assert len(declared) == len(set(declared)), "two filters fill the same signal column"


@pytest.mark.parametrize("name", ["length", "gopher_quality", "gopher_repetition", "c4_quality",
                                  "fineweb_quality", "bad_words", "language", "pii"])  # fmt: skip
def test_builtin_filter_fills_exactly_its_declared_signals(name: str) -> None:
    spec = registered()[name].model_validate({})
    batch = pa.RecordBatch.from_pydict({"doc_id": [str(i) for i in range(len(TEXTS))], "text": TEXTS})
    ctx = BatchContext(batch=batch, counts=TextCounts(pa.array(TEXTS)), alive=np.ones(len(TEXTS), dtype=bool))
    assert set(spec.apply(ctx).signals) == set(spec.signals)
    out = curate_batch(batch, normalize=NormalizeConfig(), filters=[spec])
    filled = {s for s in SIGNAL_NAMES if out.column(s).null_count < out.num_rows}
    assert filled == set(BASE_SIGNALS) | set(spec.signals)


# --- a filter written the way docs/extending.md shows: one class ...
class AdLinesFilter(BaseFilter):
    """Removes lines starting with `AD:`; drops documents that had more than `max_ad_lines` of them."""

    name: Literal["ad_lines"] = "ad_lines"
    max_ad_lines: int = Field(default=1, ge=0)

    signals = ()

    def apply(self, ctx: BatchContext) -> FilterResult:
        ads = pc.count_substring_regex(ctx.text, r"(?m)^AD:").to_numpy(zero_copy_only=False)
        reasons = np.where(ads > self.max_ad_lines, "too_many_ads", "").astype(object)
        edited = pc.replace_substring_regex(ctx.text, r"(?m)^AD:[^\n]*(\n|$)", "")
        keep = pa.array(ctx.alive & (reasons == ""))  # a dropped document keeps the text it came with
        return FilterResult(reasons, {"n_chars": np.zeros(ctx.num_rows)}, pc.if_else(keep, edited, ctx.text))


@pytest.fixture
def ad_lines() -> Iterator[type[AdLinesFilter]]:
    register(AdLinesFilter)  # ... plus one registry line
    yield AdLinesFilter
    unregister("ad_lines")


def test_a_registered_filter_is_accepted_by_the_config_and_applied(ad_lines: type[AdLinesFilter]) -> None:
    cfg = load_config(None, ["curate.filters=[{name: ad_lines, max_ad_lines: 1}, {name: length}]"])
    specs = list(cfg.curate.filters)
    assert isinstance(specs[0], AdLinesFilter) and specs[0].max_ad_lines == 1
    assert cfg.curate.model_dump(mode="json")["filters"][0] == {"name": "ad_lines", "max_ad_lines": 1}
    with pytest.raises(ConfigError, match=r"unknown config key 'curate.filters.0.ad_lines.max_ads'"):
        load_config(None, ["curate.filters=[{name: ad_lines, max_ads: 2}]"])
    with pytest.raises(ConfigError, match=r"curate.filters.0.ad_lines.max_ad_lines"):
        load_config(None, ["curate.filters=[{name: ad_lines, max_ad_lines: -1}]"])
    with pytest.raises(ConfigError, match=r"'length', .*'pii', 'ad_lines'"):
        load_config(None, ["curate.filters=[{name: ad_line}]"])

    texts = ["AD: buy now\n" + ENGLISH, "AD: one\nAD: two\n" + ENGLISH,
             "AD: one two three four five six seven\nonly three words"]  # fmt: skip
    batch = pa.RecordBatch.from_pydict({"doc_id": ["a", "b", "c"], "text": texts})
    out = curate_batch(batch, normalize=NormalizeConfig(), filters=specs)
    assert out.column("reason").to_pylist() == [None, "too_many_ads", "too_short"]
    assert out.column("text").to_pylist() == [ENGLISH, texts[1], "only three words"]
    # an undeclared signal is not written: n_chars counts the final text, not the filter's zeros
    assert out.column("n_chars").to_pylist() == [len(ENGLISH), len(texts[1]), len("only three words")]


def test_an_unregistered_name_is_a_config_error_naming_the_item() -> None:
    with pytest.raises(ConfigError, match=r"bad config value at 'curate.filters.0': Input tag 'ad_lines'"):
        load_config(None, ["curate.filters=[{name: ad_lines}]"])


def test_register_refuses_a_filter_that_breaks_the_contract() -> None:
    class NoName(BaseFilter):
        signals = ()

        def apply(self, ctx: BatchContext) -> FilterResult:
            return FilterResult(np.full(ctx.num_rows, "", dtype=object))

    class UnknownSignal(BaseFilter):
        name: Literal["unknown_signal"] = "unknown_signal"
        signals = ("ad_count",)

        def apply(self, ctx: BatchContext) -> FilterResult:
            return FilterResult(np.full(ctx.num_rows, "", dtype=object))

    class Loose(UnknownSignal):
        model_config = ConfigDict(extra="ignore")
        name: Literal["loose"] = "loose"  # type: ignore[assignment]

    class NotAFilter(BaseModel):
        model_config = ConfigDict(extra="forbid")
        name: Literal["plain"] = "plain"

    class TakenName(NoName):
        name: Literal["length"] = "length"

    with pytest.raises(TypeError, match="needs a field `name"):
        register(NoName)
    with pytest.raises(TypeError, match=r"signals \['ad_count'\] are not columns of schemas/signals.py"):
        register(UnknownSignal)
    with pytest.raises(TypeError, match="'loose': its model must keep extra='forbid'"):
        register(Loose)
    with pytest.raises(TypeError, match="must be a subclass of pipelines.filters.BaseFilter"):
        register(NotAFilter)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="'length' is taken by LengthFilter"):
        register(TakenName)
    assert register(LengthFilter) is LengthFilter and registered()["length"] is LengthFilter


def test_register_refuses_a_filter_without_apply() -> None:
    class NoApply(BaseFilter):
        name: Literal["no_apply"] = "no_apply"
        signals = ()

    with pytest.raises(TypeError, match="'no_apply': defines no apply"):
        register(NoApply)  # type: ignore[type-abstract]
    with pytest.raises(TypeError, match="abstract method apply"):
        NoApply()  # type: ignore[abstract]
