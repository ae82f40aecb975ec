"""Curate steps persisted under the scratch URI so that a killed curate resumes: see `spark.py`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def disjoint_files(files: Sequence[str], shared: Iterable[Sequence[str]]) -> list[str]:
    """The files of `files` (in order of preference) to keep so that no two kept files hold the same key: a
    file is kept unless it shares a key with a file kept before it. `shared` lists the groups of files that
    hold one same key (each key held by more than one file gives one group).

    >>> disjoint_files(["a", "b", "c"], [["a", "b"]])
    ['a', 'c']
    >>> disjoint_files(["b", "a", "c"], [["a", "b"], ["b", "c"]])
    ['b']
    """
    clashes: dict[str, set[str]] = {f: set() for f in files}
    for group in shared:
        for f in group:
            clashes.setdefault(f, set()).update(g for g in group if g != f)
    kept: list[str] = []
    for f in files:
        if not clashes[f].intersection(kept):
            kept.append(f)
    return kept
