"""Planted test material for the sample corpora: near/exact copies, junk texts, malformed lines.

Pure functions of their inputs and an explicit numpy Generator, so a build is reproducible.
"""

from __future__ import annotations

import json
import re
import unicodedata
import zlib

import numpy as np

# Junk written to look like what crawls are full of; each one must be removed or flagged by curate.
BOILERPLATE = [
    "Home | About | Products | Blog | Contact\nClick here | Login | Sign up | Forgot password?\n"
    "Home | About | Products | Blog | Contact\nCopyright 2024. All rights reserved. | Privacy Policy | Terms",
    "Accept all cookies | Reject all | Manage preferences\nWe use cookies to improve your experience. "
    "Click here to learn more.\nAccept all cookies | Reject all | Manage preferences",
    "Share on Facebook | Share on Twitter | Share by Email | Print\nShare on Facebook | Share on Twitter "
    "| Share by Email | Print\nRelated posts | Popular posts | Archives | Tags | RSS",
    "Page 1 | Page 2 | Page 3 | Page 4 | Page 5 | Next >> | Last >>\nSort by: Newest | Oldest | Popular\n"
    "Page 1 | Page 2 | Page 3 | Page 4 | Page 5 | Next >> | Last >>",
    "Subscribe to our newsletter! Enter your email: [__________] [Subscribe]\nUnsubscribe | "
    "Manage subscriptions | Contact support | Help center | Site map",
]
MARKUP = [
    '<div class="nav"><ul><li><a href="/">Home</a></li><li><a href="/a">A</a></li>'
    '<li><a href="/b">B</a></li></ul></div><div id="x"><span>&nbsp;</span></div>',
    "{{{ }}} ||| ### *** ==== ---- ++++ @@@@ %%%% &&&& ^^^^ ~~~~ <<<< >>>> [[[[ ]]]] //// \\\\\\\\",
    "0x7f 0x45 0x4c 0x46 0x02 0x01 0x01 0x00 0x00 0x00 0x00 0x00 0x00 0x00 0x00 0x00 0x02 0x00 0x3e 0x00",
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    ";;;; ;;;; ;;;; %%% $$$ ### @@@ !!! ??? ::: ;;; ,,, ... ''' \"\"\" ``` ~~~ ^^^ &&& *** ((( ))) [[[ ]]]",
]
VERY_SHORT = ["Ok.", "See above.", "Thanks!", "lol", "Page 2 of 7", "Untitled", "N/A", "Read more"]
WHITESPACE_ONLY = ["   ", "\n\n\t\n", "\u00a0\u2003 \u3000"]


def words(text: str) -> list[str]:
    return text.split()


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    """Lower-cased word n-grams of `text`; a text of fewer than `n` words gives one short shingle."""
    w = [t.lower() for t in words(text)]
    if len(w) < n:
        return {tuple(w)} if w else set()
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def jaccard(a: str, b: str, n: int = 5) -> float:
    """Jaccard similarity of the word n-gram sets of two texts (0.0 when both are empty)."""
    sa, sb = shingles(a, n), shingles(b, n)
    union = len(sa | sb)
    return len(sa & sb) / union if union else 0.0


def normalize_for_check(text: str) -> str:
    """What any reasonable normalizer maps a text to: NFC, then whitespace runs collapsed and stripped."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def delete_word_runs(text: str, rate: float, rng: np.random.Generator) -> tuple[str, int]:
    """Delete about `rate` of the words of `text`, in runs of 1-3 words, keeping layout elsewhere.

    Returns (new text, words deleted). At least one word goes. Raises ValueError for a rate outside
    (0, 0.5] or a text of fewer than 20 words.
    """
    if not 0.0 < rate <= 0.5:
        raise ValueError(f"rate must be in (0, 0.5], got {rate}")
    tokens = re.findall(r"\S+\s*", text)
    if len(tokens) < 20:
        raise ValueError(f"text has {len(tokens)} words, need at least 20")
    target = max(1, round(rate * len(tokens)))
    dead: set[int] = set()
    while len(dead) < target:
        run = int(rng.integers(1, 4))
        start = int(rng.integers(1, len(tokens) - run))  # keep the first word: titles stay recognizable
        dead.update(range(start, min(start + run, start + target - len(dead))))
    lead = text[: len(text) - len(text.lstrip())]
    return lead + "".join(t for i, t in enumerate(tokens) if i not in dead), len(dead)


EXACT_VARIANTS = ("same", "double_spaces", "crlf", "outer_whitespace", "nfd")


def exact_variant(text: str, kind: str) -> str:
    """A copy of `text` that differs only in ways normalization removes (see EXACT_VARIANTS).

    Raises ValueError for an unknown kind, or for `nfd` on a text NFD leaves unchanged.
    """
    if kind == "same":
        return text
    if kind == "double_spaces":
        return text.replace(" ", "  ")
    if kind == "crlf":
        return text.replace("\n", "\r\n")
    if kind == "outer_whitespace":
        return "  \n" + text + " \n\n"
    if kind == "nfd":
        out = unicodedata.normalize("NFD", text)
        if out == text:
            raise ValueError("nfd variant needs a text with composed characters")
        return out
    raise ValueError(f"unknown exact variant {kind!r}")


MALFORMED_KINDS = ("truncated_json", "text_not_string", "missing_text", "not_an_object", "invalid_utf8")


def malformed_line(kind: str, ident: str, source: str) -> bytes:
    """One bad JSONL line (without newline) of the given kind; see MALFORMED_KINDS."""
    if kind == "truncated_json":
        return json.dumps({"id": ident, "text": "And it came to pass, when the", "source": source})[
            :-20
        ].encode()
    if kind == "text_not_string":
        return json.dumps({"id": ident, "text": 123, "source": source, "title": "bad"}).encode()
    if kind == "missing_text":
        return json.dumps({"id": ident, "source": source, "title": "bad"}).encode()
    if kind == "not_an_object":
        return json.dumps([ident, "a JSON array, not an object"]).encode()
    if kind == "invalid_utf8":
        return b'{"id": "' + ident.encode() + b'", "text": "caf\xe9 \xff\xfe bytes", "source": "x"}'
    raise ValueError(f"unknown malformed kind {kind!r}")


def jsonl_line(record: dict[str, str]) -> bytes:
    """A record as one JSONL line (UTF-8, non-ASCII kept, no trailing newline)."""
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


def near_pairs(texts: dict[str, str], threshold: float, *, n: int = 5, sample_mod: int = 8) -> list[tuple]:
    """Pairs of ids whose word n-gram Jaccard is >= threshold, as (id_a, id_b, jaccard), sorted.

    Candidates share at least one sampled shingle (hash % sample_mod == 0), then the exact Jaccard is
    computed, so a pair can only be missed when its texts share no sampled shingle at all.
    """
    sets = {k: shingles(v, n) for k, v in texts.items() if v.strip()}
    index: dict[int, list[str]] = {}
    for k, s in sets.items():
        for sh in s:
            h = zlib.crc32("\x1f".join(sh).encode())
            if h % sample_mod == 0:
                index.setdefault(h, []).append(k)
    candidates: set[tuple[str, str]] = set()
    for ids in index.values():
        if 1 < len(ids) <= 50:
            ids = sorted(ids)
            candidates.update((a, b) for i, a in enumerate(ids) for b in ids[i + 1 :])
    out = []
    for a, b in sorted(candidates):
        sa, sb = sets[a], sets[b]
        j = len(sa & sb) / len(sa | sb)
        if j >= threshold:
            out.append((a, b, round(j, 4)))
    return out
