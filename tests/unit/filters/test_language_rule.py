"""The language filter scores prose lines by default: English technical text with tables stays, text in
other languages still goes."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.filters import curate_batch
from pipelines.filters.config import LanguageFilter
from pipelines.filters.language import is_prose_line, language_scoring_text
from pipelines.filters.normalize import NormalizeConfig

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample"


def _run(texts: list[str], spec: LanguageFilter) -> pa.RecordBatch:
    batch = pa.RecordBatch.from_pydict({"doc_id": [str(i) for i in range(len(texts))], "text": texts})
    return curate_batch(batch, normalize=NormalizeConfig(), filters=[spec])


@pytest.fixture(scope="module")
def vim_page() -> str:
    """debref-1-4-8 of the bundled sample: a Debian Reference section that is mostly a table of key strokes."""
    rows = pq.read_table(SAMPLE / "debian-reference.parquet", columns=["id", "text"]).to_pylist()
    return next(r["text"] for r in rows if r["id"] == "debref-1-4-8")


def test_prose_lines_are_running_text_not_table_rows_or_commands() -> None:
    assert is_prose_line("The recent vim(1) starts itself in the sane nocompatible option")
    assert is_prose_line("Der Hund läuft jeden Morgen mit seinem Besitzer durch den Park.")
    assert is_prose_line("床前明月光，疑是地上霜。举头望明月，低头思故乡。")
    assert not is_prose_line("|NORMAL         |:w filename.ext  |write current buffer to      |")
    assert not is_prose_line("+---------------------------------------------------------------+")
    assert not is_prose_line("$ sudo apt-get install build-essential devscripts")
    assert not is_prose_line("apt 2.6.1 V:873 I:999 4485 advanced front-end for dpkg")


def test_scoring_text_keeps_prose_in_order_and_falls_back_to_the_whole_text(vim_page: str) -> None:
    scored = language_scoring_text(vim_page, 2000)
    assert scored.startswith("The recent vim(1) starts itself") and "|NORMAL" not in scored
    table_only = "| a | b |\n| 1 | 2 |\n"
    assert language_scoring_text(table_only, 2000) == table_only  # no prose: scored as a whole


def test_english_technical_text_is_kept_and_other_languages_dropped(vim_page: str) -> None:
    german = "Der Hund läuft jeden Morgen mit seinem Besitzer durch den großen Park am Rande der Stadt.\n" * 4
    before = _run([vim_page, german], LanguageFilter(score_lines="all"))
    assert before.column("reason").to_pylist() == ["language", "language"]  # the old rule drops the page
    after = _run([vim_page, german], LanguageFilter())
    assert after.column("reason").to_pylist() == [None, "language"]
    assert after.column("language").to_pylist() == ["en", "de"]
    assert after.column("language_score").to_pylist()[0] > 0.65
