"""Shared helpers of the parity tests and the benchmark: the corpus, and datatrove's filters run on it."""

from __future__ import annotations

import importlib.metadata  # noqa: F401  (datatrove 0.9 calls importlib.metadata without importing it)
import json
import re
from pathlib import Path

import pyarrow as pa

from pipelines.filters.config import NormalizeConfig

CORPUS = Path(__file__).parent / "data" / "parity_corpus.jsonl"
# datatrove's filters see the text as stored: our normalization is switched off for the comparison
RAW = NormalizeConfig(unicode_form="none", strip_control=False, line_endings=False, collapse_whitespace=False)


def load_corpus() -> list[dict]:
    with open(CORPUS, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def corpus_batch(docs: list[dict]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"doc_id": [d["id"] for d in docs], "text": [d["text"] for d in docs]})


def datatrove_filter(name: str):
    """datatrove's filter for one of our family names, with its published defaults."""
    from datatrove.pipeline.filters import (
        C4BadWordsFilter,
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    if name == "bad_words":
        from pipelines.filters.bad_words import bad_words_en

        f = C4BadWordsFilter(seed=0)
        # datatrove downloads the same LDNOOBW revision; give it our bundled copy, compiled its way
        words = [re.escape(w) for w in bad_words_en()]
        f._badwords_regex["en"] = re.compile(r"(?:\W|^)({})(?:\W|$)".format("|".join(words)))
        return f
    return {
        "gopher_quality": GopherQualityFilter,
        "gopher_repetition": GopherRepetitionFilter,
        "c4_quality": C4QualityFilter,
        "fineweb_quality": FineWebQualityFilter,
    }[name]()


def datatrove_decisions(name: str, texts: list[str]) -> tuple[list[str | None], list[str]]:
    """(reason or None per text, text after the filter) with datatrove's implementation."""
    from datatrove.data import Document

    f = datatrove_filter(name)
    reasons: list[str | None] = []
    out: list[str] = []
    for i, t in enumerate(texts):
        doc = Document(text=t, id=str(i))
        res = f.filter(doc)
        if res is True:
            reasons.append(None)
        elif isinstance(res, tuple):
            reasons.append(res[1])
        else:
            reasons.append("dropped")
        out.append(doc.text)
    return reasons, out
