"""Unit tests of normalization, the word splitter, each filter family and `curate_batch`'s contract."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from pydantic import TypeAdapter, ValidationError

from pipelines.filters import curate_batch
from pipelines.filters.batch import TextCounts
from pipelines.filters.config import (
    BadWordsFilter,
    C4QualityFilter,
    FilterSpec,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
    LanguageFilter,
    LengthFilter,
    NormalizeConfig,
    PIIFilter,
)
from pipelines.filters.normalize import normalize_text
from schemas.clean_docs import TABLE as CLEAN_DOCS
from schemas.signals import SIGNAL_FIELDS, SIGNAL_NAMES

ENGLISH = (
    "The history of the village goes back to the twelfth century, when a small chapel was built on the hill. "
    "Over the following centuries the settlement grew slowly, and by the time of the first census it had "
    "nearly four hundred inhabitants. Most of them worked on the farms that surrounded the village, and "
    "some of the families that have lived there since then still own the same fields today. The old mill "
    "by the river was restored in 1998 and is now a small museum with a cafe that is open in the summer."
)


def words_of(text: str) -> list[str]:
    tc = TextCounts(pa.array([text]))
    ts, te, _ = tc.tokens
    return ["".join(map(chr, tc.cps[a:b])) for a, b in zip(ts, te, strict=True)]


def run(texts, filters, normalize=None, ids=None):
    batch = pa.RecordBatch.from_pydict({"doc_id": ids or [str(i) for i in range(len(texts))], "text": texts})
    return curate_batch(batch, normalize=normalize or NormalizeConfig(), filters=filters)


def test_word_splitter_follows_english_tokenizer_rules():
    assert words_of("Don't stop-me now... it's 3.5 km, e.g. Mr. Smith's U.S.A. trip (1-2) x/y.") == [
        "Do", "n't", "stop", "-", "me", "now", "...", "it", "'s", "3.5", "km", ",", "e.g.", "Mr.", "Smith",
        "'s", "U.S.A.", "trip", "(", "1", "-", "2", ")", "x", "/", "y", ".",
    ]  # fmt: skip
    assert words_of("mail foo@bar.com or http://x.org/a?b=c!") == [
        "mail",
        "foo@bar.com",
        "or",
        "http://x.org/a?b=c",
        "!",
    ]
    assert words_of("  \n\t ") == []


def test_normalize_nfc_controls_line_endings_whitespace():
    text = pa.array(["  Cafe\u0301\r\nline\x00two\t\t x \u00a0y \n\n\n\n\npara\u2028end  ", None])
    assert normalize_text(text, NormalizeConfig()).to_pylist() == ["Café\nlinetwo x y\n\npara\nend", None]
    off = NormalizeConfig(
        unicode_form="none", strip_control=False, line_endings=False, collapse_whitespace=False
    )
    assert normalize_text(text, off).to_pylist() == text.to_pylist()
    with pytest.raises(ValueError, match="int64"):
        normalize_text(pa.array([1, 2]), NormalizeConfig())


def test_filter_spec_is_a_discriminated_union():
    adapter = TypeAdapter(list[FilterSpec])
    specs = adapter.validate_python([{"name": "length"}, {"name": "gopher_quality", "min_doc_words": 10}])
    assert isinstance(specs[0], LengthFilter) and specs[1].min_doc_words == 10
    with pytest.raises(ValidationError, match="gopher_qualityy"):
        adapter.validate_python([{"name": "gopher_qualityy"}])
    with pytest.raises(ValidationError, match="min_words_typo"):
        adapter.validate_python([{"name": "length", "min_words_typo": 3}])


def test_output_contract_types_order_and_reasons():
    texts = [ENGLISH, "", "too few words here", None]
    out = run(texts, [LengthFilter(), GopherQualityFilter()], ids=["a", "b", "c", "d"])
    assert out.column("doc_id").to_pylist() == ["a", "b", "c", "d"]
    assert out.column("reason").to_pylist() == [None, "empty", "too_short", "empty"]
    for field in CLEAN_DOCS.arrow_schema:
        if field.name in SIGNAL_NAMES:
            assert out.schema.field(field.name).type == field.type, field.name
    assert out.column("n_chars").to_pylist()[:3] == [len(ENGLISH), 0, 18]
    assert out.column("language").null_count == 4  # no language filter: not computed
    q = out.column("quality_score").to_numpy()
    assert 0.8 < q[0] <= 1.0 and q[1] == 0.0
    assert out.column("n_stop_words").to_pylist()[0] >= 2


def test_single_filter_runs_only_that_filter_and_order_matters():
    bullets = "\n".join(f"- item number {i} of the list" for i in range(60))
    assert run([bullets], [FineWebQualityFilter()]).column("reason").to_pylist() == ["line_punct_ratio"]
    assert run([bullets], [GopherQualityFilter()]).column("reason").to_pylist() == ["gopher_too_many_bullets"]
    both = run([bullets], [GopherQualityFilter(), FineWebQualityFilter()]).column("reason").to_pylist()
    assert both == ["gopher_too_many_bullets"]


def test_gopher_repetition_reasons_and_signals():
    repeated = "\n\n".join(["This paragraph says the same thing again and again."] * 6)
    out = run([repeated, ENGLISH], [GopherRepetitionFilter()])
    assert out.column("reason").to_pylist() == ["dup_para_frac", None]
    assert out.column("dup_para_frac").to_pylist()[0] == pytest.approx(5 / 6)
    assert out.column("dup_10_gram_char_frac").to_pylist()[1] == 0.0


def test_c4_edits_lines_and_drops_documents():
    text = "\n".join([
        "Short line",
        ENGLISH,
        "Please enable javascript to see this page, it is needed.",
        "We use cookies on this site and you agree to that.",
        "A citation follows here in the text.[12]",
    ])  # fmt: skip
    out = run(
        [text, "Lorem ipsum dolor sit amet, consectetur adipiscing.", "Only one sentence is here."],
        [C4QualityFilter()],
    )
    assert out.column("reason").to_pylist() == [None, "lorem_ipsum", "too_few_sentences"]
    assert out.column("text").to_pylist()[0] == ENGLISH + "\nA citation follows here in the text."
    assert out.column("c4_sentences").to_pylist()[0] == 5
    curly = ". ".join(["This is a sentence with words"] * 6) + ". And {braces} here."
    assert run([curly], [C4QualityFilter()]).column("reason").to_pylist() == ["curly_bracket"]


def test_pii_redacts_and_counts():
    text = "Write to jane.doe@example.org, call +1 (555) 123-4567 or reach 10.0.0.12 today."
    out = run([text], [PIIFilter()])
    assert out.column("text").to_pylist() == [
        "Write to <EMAIL>, call <PHONE_NUMBER> or reach <IP_ADDRESS> today."
    ]
    assert [out.column(c).to_pylist()[0] for c in ("pii_emails", "pii_ips", "pii_phones")] == [1, 1, 1]
    assert out.column("reason").to_pylist() == [None]
    strict = run([text], [PIIFilter(max_matches=2)])
    assert strict.column("reason").to_pylist() == ["pii"]
    assert run(["Released on 2021-03-04 for 12.50 dollars."], [PIIFilter()]).column(
        "pii_phones"
    ).to_pylist() == [0]


def test_bad_words_whole_words_only_and_keep_fraction():
    out = run(["what the fuck is this", "Scunthorpe is classy", "assassin"], [BadWordsFilter()])
    assert out.column("reason").to_pylist() == ["bad_words", None, None]
    assert out.column("has_bad_words").to_pylist() == [True, False, False]
    texts = [f"this is porn number {i}" for i in range(200)]
    kept = run(texts, [BadWordsFilter(keep_fraction=0.5, seed=3)]).column("reason").null_count
    assert 60 < kept < 140
    again = run(texts, [BadWordsFilter(keep_fraction=0.5, seed=3)]).column("reason").null_count
    assert kept == again


def test_language_filter_with_bundled_lite_model():
    texts = [
        ENGLISH,
        "Der Hund läuft jeden Morgen mit seinem Besitzer durch den großen Park am Rande der Stadt.",
        "Привет, как дела? Сегодня очень хорошая погода, и мы пойдём гулять в парк.",
    ]
    out = run(texts, [LanguageFilter()])
    assert out.column("language").to_pylist() == ["en", "de", "ru"]
    assert out.column("reason").to_pylist() == [None, "language", "language"]
    assert out.column("language_score").to_pylist()[0] > 0.65
    anyone = run(texts, [LanguageFilter(languages=None, min_score=0.5)])
    assert anyone.column("reason").to_pylist() == [None, None, None]


@pytest.mark.parametrize(
    "text",
    ["", "   \n\t  ", "!!! ### ??? ... $$$ %%%", "x" * 300_000, "word " * 100_000 + "\n" * 5000,
     "𓀀𓀁𓀂 𓀃𓀄 𓀅" * 50, "\x00\x01\x02", "\u200b\u200b", "{" * 1000, "\ud7ff" * 10],
    ids=["empty", "whitespace", "symbols", "huge_line", "huge_doc", "hieroglyphs", "controls", "zwsp", "braces", "edge_bmp"],
)  # fmt: skip
def test_bad_input_gets_a_reason_never_a_crash(text):
    filters = [
        LengthFilter(), GopherQualityFilter(), GopherRepetitionFilter(), C4QualityFilter(),
        FineWebQualityFilter(), BadWordsFilter(), LanguageFilter(), PIIFilter(),
    ]  # fmt: skip
    out = run([text], filters)
    assert out.num_rows == 1
    assert isinstance(out.column("reason").to_pylist()[0], str)
    # each family alone as well, without normalization
    raw = NormalizeConfig(
        unicode_form="none", strip_control=False, line_endings=False, collapse_whitespace=False
    )
    for f in filters:
        res = run([text], [f], normalize=raw)
        assert res.num_rows == 1


def test_signal_field_ids_are_fixed():
    ids = {f.name: f.field_id for f in SIGNAL_FIELDS}
    assert ids["n_chars"] == 100 and ids["language_score"] == 105 and ids["quality_score"] == 106
    assert all(100 <= i <= 199 for i in ids.values()) and len(set(ids.values())) == len(ids)


def test_kernels_are_deterministic_across_batch_splits():
    texts = [ENGLISH, "short", ENGLISH.upper(), "x y z\n" * 40]
    filters = [GopherQualityFilter(), GopherRepetitionFilter(), FineWebQualityFilter()]
    whole = run(texts, filters)
    parts = [run([t], filters) for t in texts]
    for name in ("reason", "quality_score", "dup_line_frac", "line_punct_ratio"):
        assert whole.column(name).to_pylist() == [p.column(name).to_pylist()[0] for p in parts]
    assert np.isfinite(whole.column("quality_score").to_numpy()).all()
