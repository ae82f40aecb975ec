"""What a stage run returns: counts by name, the snapshots it committed and where its outputs are."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class StageReport:
    """Result of one stage run. `counts` holds documents in/out by reason, tokens, shards, bytes, etc.;
    `snapshots` maps table name to the snapshot id committed; `outputs` maps a label to a path or URI."""

    stage: str
    counts: dict[str, int] = field(default_factory=dict)
    snapshots: dict[str, int | None] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    skipped: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def write_metrics(self, path: str | Path) -> None:
        """Write the numbers of this report (stage, counts, seconds) as the metrics JSON `dvc metrics` reads;
        snapshot ids and output locations go to the stage's pointer file instead."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        data = {"stage": self.stage, "counts": self.counts, "seconds": self.seconds}
        p.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    def record_run(self, history: str | Path, previous_snapshots: dict[str, Any] | None = None) -> dict[str, Any]:
        """Append this run to the stage's history (JSON lines: stage, finished_at, seconds, counts, snapshots,
        did_work) and return the line. A run did work unless it was skipped or committed nothing: its snapshot
        ids are those of the stage's previous run (the history's last line, else ``previous_snapshots``, e.g.
        from the stage's pointer file in a lake written before the history). Unlike the metrics file, which
        the last run overwrites, the history keeps the last run that did work after a run with nothing new."""
        p = Path(history)
        p.parent.mkdir(parents=True, exist_ok=True)
        runs = read_history(p)
        previous = runs[-1]["snapshots"] if runs else previous_snapshots
        line = {"stage": self.stage, "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "seconds": self.seconds, "counts": self.counts, "snapshots": self.snapshots,
                "did_work": not self.skipped and self.snapshots != previous}
        with p.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line, sort_keys=True) + "\n")
        return line


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The runs :meth:`StageReport.record_run` appended to ``path``, oldest first ([] without the file);
    a line that is not a JSON object (a run killed mid-write) is left out."""
    p = Path(path)
    if not p.exists():
        return []
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "stage" in row:
            out.append(row)
    return out


def last_runs(history_dir: str | Path) -> list[dict[str, Any]]:
    """Per stage (by name) in ``history_dir``: ``stage``, ``last`` (its last run) and ``worked`` (its last run
    that did work, None when none did)."""
    folder = Path(history_dir)
    out = []
    for p in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        runs = read_history(p)
        if runs:
            worked = [r for r in runs if r.get("did_work")]
            out.append({"stage": runs[-1]["stage"], "last": runs[-1], "worked": worked[-1] if worked else None})
    return out
