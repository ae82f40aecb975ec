"""Only the Spark glue names pyspark: `grep -rl pyspark --include=*.py pipelines dedup sharding schemas` lists
files named spark*.py only (jobs/ is outside the check: its entry points build sessions by design)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORD = re.compile(rb"pyspark")


def test_only_spark_modules_mention_pyspark() -> None:
    hits = sorted(
        str(path.relative_to(REPO))
        for package in ("pipelines", "dedup", "sharding", "schemas")
        for path in (REPO / package).rglob("*.py")
        if WORD.search(path.read_bytes())
    )
    assert hits, "the Spark glue itself must still be found (the check would pass vacuously otherwise)"
    assert [h for h in hits if not Path(h).name.startswith("spark")] == []
