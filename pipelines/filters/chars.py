"""Per-code-point class flags used by the filter kernels.

One uint16 table indexed by code point replaces Python's `str` predicates inside numba kernels. Code points
above `TABLE_SIZE` (planes 3-16: unassigned, tags and private use) get flags 0, which matches Python there
(`isalpha`, `isspace` and `isdigit` are all False).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import numpy as np

TABLE_SIZE = 0x30000

SPACE = 1  # str.isspace
ALPHA = 2  # str.isalpha
ALNUM = 4  # str.isalnum
SYMBOL = 8  # in the Gopher/FineWeb punctuation set: a word made only of these is a "symbol word"
TERMINAL = 16  # Unicode Sentence_Terminal: FineWeb's line-end marks and the sentence splitter's marks
UPUNCT = 32  # Unicode category P*: a token made only of these is punctuation for sentence splitting
SPLIT = 64  # split off a word's start or end by the word splitter (punctuation, quotes, currency, icons)
LINEBREAK = 128  # a line boundary for str.splitlines
DIGIT = 256  # str.isdigit
UPPER = 512  # str.isupper
LOWER = 1024  # str.islower

# ASCII and CJK punctuation and the C0/C1 controls that Gopher-style symbol-word tests ignore.
_SYMBOLS = (
    "!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»"
    + "".join(chr(x) for a, b in ((0, 9), (11, 13), (13, 32), (127, 160)) for x in range(a, b))
)

# Unicode's Sentence_Terminal property, as inclusive ranges of code points.
_TERMINAL_RANGES = (
    (0x21, 0x21), (0x2E, 0x2E), (0x3F, 0x3F), (0x589, 0x589), (0x61D, 0x61F), (0x6D4, 0x6D4),
    (0x700, 0x702), (0x7F9, 0x7F9), (0x837, 0x837), (0x839, 0x839), (0x83D, 0x83E), (0x964, 0x965),
    (0x104A, 0x104B), (0x1362, 0x1362), (0x1367, 0x1368), (0x166E, 0x166E), (0x1735, 0x1736),
    (0x17D4, 0x17D6), (0x17D9, 0x17DA), (0x1803, 0x1803), (0x1809, 0x1809), (0x1944, 0x1945),
    (0x1AA8, 0x1AAB), (0x1B5A, 0x1B5B), (0x1B5E, 0x1B5F), (0x1B7D, 0x1B7E), (0x1C3B, 0x1C3C),
    (0x1C7E, 0x1C7F), (0x203C, 0x203D), (0x2047, 0x2049), (0x2E2E, 0x2E2E), (0x2E3C, 0x2E3C),
    (0x2E53, 0x2E54), (0x3002, 0x3002), (0xA4FF, 0xA4FF), (0xA60E, 0xA60F), (0xA6F3, 0xA6F3),
    (0xA6F7, 0xA6F7), (0xA876, 0xA877), (0xA8CE, 0xA8CF), (0xA92F, 0xA92F), (0xA9C8, 0xA9C9),
    (0xAA5D, 0xAA5F), (0xAAF0, 0xAAF1), (0xABEB, 0xABEB), (0xFE52, 0xFE52), (0xFE56, 0xFE57),
    (0xFF01, 0xFF01), (0xFF0E, 0xFF0E), (0xFF1F, 0xFF1F), (0xFF61, 0xFF61), (0x10A56, 0x10A57),
    (0x10F55, 0x10F59), (0x10F86, 0x10F89), (0x11047, 0x11048), (0x110BE, 0x110C1), (0x11141, 0x11143),
    (0x111C5, 0x111C6), (0x111CD, 0x111CD), (0x111DE, 0x111DF), (0x11238, 0x11239), (0x1123B, 0x1123C),
    (0x112A9, 0x112A9), (0x1144B, 0x1144C), (0x115C2, 0x115C3), (0x115C9, 0x115D7), (0x11641, 0x11642),
    (0x1173C, 0x1173E), (0x11944, 0x11944), (0x11946, 0x11946), (0x11A42, 0x11A43), (0x11A9B, 0x11A9C),
    (0x11C41, 0x11C42), (0x11EF7, 0x11EF8), (0x11F43, 0x11F44), (0x16A6E, 0x16A6F), (0x16AF5, 0x16AF5),
    (0x16B37, 0x16B38), (0x16B44, 0x16B44), (0x16E98, 0x16E98), (0x1BC9F, 0x1BC9F), (0x1DA88, 0x1DA88),
)  # fmt: skip

# Marks the word splitter splits off a chunk's start and end (spaCy's punctuation, quote and dash lists);
# currency signs (Sc) and other symbols (So) are split as well. '.' and '-' have rules of their own.
_SPLIT_MARKS = "…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪%'\"”“`‘´’‚„»«「」『』（）〔〕【】《》〈〉⟦⟧—–"
_LINEBREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


@lru_cache(maxsize=1)
def char_flags() -> np.ndarray:
    """The flag table: uint16 array of length `TABLE_SIZE`, built once per process (~0.2 s)."""
    flags = np.zeros(TABLE_SIZE, dtype=np.uint16)
    for cp in range(TABLE_SIZE):
        ch = chr(cp)
        f = 0
        if ch.isspace():
            f |= SPACE
        if ch.isalpha():
            f |= ALPHA
        if ch.isalnum():
            f |= ALNUM
        if ch.isdigit():
            f |= DIGIT
        if ch.isupper():
            f |= UPPER
        if ch.islower():
            f |= LOWER
        cat = unicodedata.category(ch)
        if cat[0] == "P":
            f |= UPUNCT
        if cat in ("Sc", "So") or ch in _SPLIT_MARKS:
            f |= SPLIT
        if f:
            flags[cp] = f
    for ch in _SYMBOLS:
        flags[ord(ch)] |= SYMBOL
    for lo, hi in _TERMINAL_RANGES:
        flags[lo : hi + 1] |= TERMINAL
    for ch in _LINEBREAKS:
        flags[ord(ch)] |= LINEBREAK
    return flags


def codepoints(words: list[str] | tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Words as one int32 code-point array plus int64 offsets (len(words)+1), for passing to kernels."""
    offsets = np.zeros(len(words) + 1, dtype=np.int64)
    parts = []
    for i, w in enumerate(words):
        arr = np.frombuffer(w.encode("utf-32-le"), dtype=np.int32)
        parts.append(arr)
        offsets[i + 1] = offsets[i] + len(arr)
    flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return flat.astype(np.int32), offsets
