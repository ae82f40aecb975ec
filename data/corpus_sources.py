"""Readers for the Debian text packages the sample corpus is cut from (stdlib only).

Each reader returns plain records: dicts with `id`, `text`, `source` and `title` (all str), in the
package's own order, so the build is deterministic for a given package version. A missing package
raises FileNotFoundError naming the package to install.
"""

from __future__ import annotations

import gzip
import re
import struct
import unicodedata
from pathlib import Path

KJV_DATA = Path("/usr/lib/bible.data")
JARGON_DICT = Path("/usr/share/dictd/jargon.dict.dz")
JARGON_INDEX = Path("/usr/share/dictd/jargon.index")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
DEBREF_TXT = Path("/usr/share/debian-reference/debian-reference.en.txt.gz")
DPKG_STATUS = Path("/var/lib/dpkg/status")
DPKG_INFO = Path("/var/lib/dpkg/info")

# Book abbreviations used in bible.data, in canonical order, with their titles.
KJV_BOOKS: dict[str, str] = {
    "Ge": "Genesis",
    "Exo": "Exodus",
    "Lev": "Leviticus",
    "Num": "Numbers",
    "Deu": "Deuteronomy",
    "Josh": "Joshua",
    "Jdgs": "Judges",
    "Ruth": "Ruth",
    "1Sm": "1 Samuel",
    "2Sm": "2 Samuel",
    "1Ki": "1 Kings",
    "2Ki": "2 Kings",
    "1Chr": "1 Chronicles",
    "2Chr": "2 Chronicles",
    "Ezra": "Ezra",
    "Neh": "Nehemiah",
    "Est": "Esther",
    "Job": "Job",
    "Psa": "Psalms",
    "Prv": "Proverbs",
    "Eccl": "Ecclesiastes",
    "SSol": "Song of Solomon",
    "Isa": "Isaiah",
    "Jer": "Jeremiah",
    "Lam": "Lamentations",
    "Eze": "Ezekiel",
    "Dan": "Daniel",
    "Hos": "Hosea",
    "Joel": "Joel",
    "Amos": "Amos",
    "Obad": "Obadiah",
    "Jonah": "Jonah",
    "Mic": "Micah",
    "Nahum": "Nahum",
    "Hab": "Habakkuk",
    "Zep": "Zephaniah",
    "Hag": "Haggai",
    "Zec": "Zechariah",
    "Mal": "Malachi",
    "Mat": "Matthew",
    "Mark": "Mark",
    "Luke": "Luke",
    "John": "John",
    "Acts": "Acts",
    "Rom": "Romans",
    "1Cor": "1 Corinthians",
    "2Cor": "2 Corinthians",
    "Gal": "Galatians",
    "Eph": "Ephesians",
    "Phi": "Philippians",
    "Col": "Colossians",
    "1Th": "1 Thessalonians",
    "2Th": "2 Thessalonians",
    "1Tim": "1 Timothy",
    "2Tim": "2 Timothy",
    "Titus": "Titus",
    "Phmn": "Philemon",
    "Heb": "Hebrews",
    "Jas": "James",
    "1Pet": "1 Peter",
    "2Pet": "2 Peter",
    "1Jn": "1 John",
    "2Jn": "2 John",
    "3Jn": "3 John",
    "Jude": "Jude",
    "Rev": "Revelation",
}


def _require(path: Path, package: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: install the Debian package {package!r}")
    return path


def package_version(package: str) -> str:
    """The installed version of a Debian package, read from the dpkg status file."""
    status = _require(DPKG_STATUS, "dpkg").read_text(encoding="utf-8", errors="replace")
    for stanza in status.split("\n\n"):
        if re.search(rf"^Package: {re.escape(package)}$", stanza, re.M):
            found = re.search(r"^Version: (\S+)$", stanza, re.M)
            if found:
                return found.group(1)
    raise FileNotFoundError(f"Debian package {package!r} is not installed")


def unlzw(data: bytes, maxbits: int = 16) -> bytes:
    """Decode one Unix `compress` (LZW, block mode) code stream without its 3-byte header.

    Codes grow from 9 to `maxbits` bits; on each width change or CLEAR (256) the reader skips to the
    end of the current group of 8 codes, as compress(1) writes them. Raises ValueError on a code that
    is neither in the table nor the next free entry.
    """
    table = [bytes([i]) for i in range(256)] + [b""]
    out: list[bytes] = []
    n_bits, seg_start, pos = 9, 0, 0
    end_bits = len(data) * 8
    padded = data + b"\0\0\0"
    prev: bytes | None = None
    while True:
        if len(table) > (1 << n_bits) - 1 and n_bits < maxbits:
            group = n_bits * 8
            pos = seg_start = seg_start + -(-(pos - seg_start) // group) * group
            n_bits += 1
        if pos + n_bits > end_bits:
            return b"".join(out)
        i = pos >> 3
        code = (int.from_bytes(padded[i : i + 3], "little") >> (pos & 7)) & ((1 << n_bits) - 1)
        pos += n_bits
        if prev is None:
            prev = table[code]
            out.append(prev)
            continue
        if code == 256:
            del table[256:]
            group = n_bits * 8
            pos = seg_start = seg_start + -(-(pos - seg_start) // group) * group
            n_bits = 9
            continue
        if code < len(table):
            entry = table[code]
        elif code == len(table):
            entry = prev + prev[:1]
        else:
            raise ValueError(f"bad LZW code {code} at bit {pos - n_bits}")
        out.append(entry)
        if len(table) < (1 << maxbits):
            table.append(prev + entry[:1])
        prev = entry


def kjv_text(path: Path = KJV_DATA) -> str:
    """The whole KJV text file from bible-kjv-text's `bible.data` (header, then `Ge1:1 verse` lines).

    The file holds 64 KiB blocks, each an LZW stream whose offsets follow a fixed 92-byte header.
    """
    raw = _require(path, "bible-kjv-text").read_bytes()
    if not raw.startswith(b"EC02Compressed Data File"):
        raise ValueError(f"{path}: not a BRS compressed data file")
    _, _, n_blocks = struct.unpack(">3I", raw[0x50:0x5C])
    offsets = struct.unpack(f">{n_blocks + 1}I", raw[0x5C : 0x5C + 4 * (n_blocks + 1)])
    blocks = [unlzw(raw[offsets[i] : offsets[i + 1]]) for i in range(n_blocks)]
    return b"".join(blocks).decode("ascii")


def kjv_chapters(path: Path = KJV_DATA) -> list[dict[str, str]]:
    """One record per chapter: id `kjv-<book>-<chapter:03d>`, verses one per line without references."""
    chapters: dict[tuple[str, int], list[str]] = {}
    for line in kjv_text(path).splitlines()[1:]:
        m = re.match(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$", line)
        if not m:
            raise ValueError(f"unexpected KJV line {line[:40]!r}")
        chapters.setdefault((m.group(1), int(m.group(2))), []).append(m.group(4).strip())
    return [
        {
            "id": f"kjv-{book.lower()}-{chap:03d}",
            "text": "\n".join(verses),
            "source": "bible-kjv-text",
            "title": f"{KJV_BOOKS[book]} {chap}",
        }
        for (book, chap), verses in chapters.items()
    ]


def _b64(s: str) -> int:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    n = 0
    for ch in s:
        n = n * 64 + alphabet.index(ch)
    return n


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-") or "x"


def jargon_entries() -> list[dict[str, str]]:
    """One record per Jargon File entry (dictd index order), id `jargon-<slug>`; short entries kept."""
    body = gzip.decompress(_require(JARGON_DICT, "dict-jargon").read_bytes())
    records: list[dict[str, str]] = []
    seen: set[str] = set()
    for line in _require(JARGON_INDEX, "dict-jargon").read_text(encoding="utf-8").splitlines():
        head, off, size = line.split("\t")
        if head.startswith("00-database"):
            continue
        text = body[_b64(off) : _b64(off) + _b64(size)].decode("utf-8").strip()
        slug = _slug(head)
        while f"jargon-{slug}" in seen:
            slug += "-x"
        seen.add(f"jargon-{slug}")
        records.append({"id": f"jargon-{slug}", "text": text, "source": "dict-jargon", "title": head})
    return records


def package_files(package: str) -> list[Path]:
    """Regular files (not links) a Debian package installed, from its dpkg file list."""
    listing = _require(DPKG_INFO / f"{package}.list", package).read_text(encoding="utf-8").splitlines()
    return [Path(p) for p in listing if Path(p).is_file() and not Path(p).is_symlink()]


def read_fortune_file(path: Path) -> list[str]:
    """The fortunes of one strfile source file (entries separated by `%` lines), UTF-8 or Latin-1."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    parts = re.split(r"^%\s*$", text.replace("\r\n", "\n"), flags=re.M)
    return [p.strip("\n") for p in parts if p.strip()]


def fortune_documents(
    path: Path, prefix: str, source: str, *, max_chars: int = 1600, max_items: int = 6, alone_words: int = 40
) -> list[dict[str, str]]:
    """Group a fortune file's entries, in file order, into documents of a few paragraphs.

    A fortune of `alone_words` words or more is a document of its own (the same long fortune in two
    files then gives natural duplicate documents); shorter ones are grouped, a group closing before it
    would pass `max_chars` characters or `max_items` fortunes. Ids are `<prefix>-<file>-<n:04d>`.
    """
    docs: list[dict[str, str]] = []
    group: list[str] = []

    def flush() -> None:
        if group:
            n = len(docs) + 1
            docs.append(
                {
                    "id": f"{prefix}-{_slug(path.name)}-{n:04d}",
                    "text": "\n\n".join(group),
                    "source": source,
                    "title": f"{path.name} #{n}",
                }
            )
            group.clear()

    for fortune in read_fortune_file(path):
        if len(fortune.split()) >= alone_words:
            flush()
            group.append(fortune)
            flush()
            continue
        if group and (sum(map(len, group)) + len(fortune) > max_chars or len(group) >= max_items):
            flush()
        group.append(fortune)
    flush()
    return docs


def english_fortune_files() -> list[Path]:
    """The English fortune source files of `fortunes` and `fortunes-min` (no .dat/.u8 or subfolders)."""
    files = package_files("fortunes") + package_files("fortunes-min")
    return sorted(p for p in files if p.parent == FORTUNES_DIR and not p.suffix)


def _dedent4(line: str) -> str:
    # The plain-text edition indents body text by four characters, some of them NO-BREAK SPACEs.
    head = line[:4]
    return line[4:] if head and all(c in " \u00a0" for c in head) and len(head) == 4 else line.lstrip(" ")


def debref_sections() -> list[dict[str, str]]:
    """One record per numbered section of the Debian Reference plain-text edition, with body text.

    Sections are split at headings such as `1.2.3.<NBSP>Title`; headings with no body before the next
    heading (a chapter or section that opens straight into a subsection) yield no record.
    """
    text = gzip.decompress(_require(DEBREF_TXT, "debian-reference-en").read_bytes()).decode("utf-8")
    lines = text.splitlines()
    # The body starts at the second "Preface" heading (the first one is in the table of contents).
    starts = [i for i, ln in enumerate(lines) if ln.strip() == "Preface"]
    lines = lines[starts[1] :]
    # Body headings separate number and title with a NO-BREAK SPACE; contents lists use a plain space.
    heading = re.compile(r"^(?:(?:Chapter|Appendix)\u00a0)?((?:\d+|[A-Z])(?:\.\d+)*)\.\u00a0(\S.*)$")
    records: list[dict[str, str]] = []
    number, title, body = "pr", "Preface", []
    in_preface = True

    def flush() -> None:
        content = "\n".join(_dedent4(ln) for ln in body).strip("\n")
        if content.strip():
            records.append(
                {
                    "id": f"debref-{_slug(number)}",
                    "text": content,
                    "source": "debian-reference-en",
                    "title": unicodedata.normalize("NFKC", title),
                }
            )

    for line in lines[1:]:
        m = heading.match(line)
        if m:
            flush()
            in_preface = in_preface and not line.startswith("Chapter")
            number = f"pr.{m.group(1)}" if in_preface else m.group(1)
            title, body = m.group(2).strip(), []
        else:
            body.append(line)
    flush()
    return records
