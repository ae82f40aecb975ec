"""Only the Spark glue names pyspark: `grep -rl pyspark --include=*.py pipelines dedup sharding schemas` lists
files named spark.py only (jobs/ is outside the check: its entry points build sessions by design)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORD = re.compile(rb"pyspark")


def _mentions(package: str) -> list[str]:
    return sorted(str(path.relative_to(REPO)) for path in (REPO / package).rglob("*.py")
                  if WORD.search(path.read_bytes()))


def test_only_spark_modules_mention_pyspark() -> None:
    hits = [h for package in ("pipelines", "dedup", "sharding", "schemas") for h in _mentions(package)]
    assert hits, "the Spark glue itself must still be found (the check would pass vacuously otherwise)"
    assert "dedup/spark.py" in hits, "dedup's Spark adapter must still be found"
    assert [h for h in hits if Path(h).name != "spark.py"] == []
