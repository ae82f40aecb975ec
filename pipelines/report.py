"""What a stage run returns: counts by name, the snapshots it committed and where its outputs are."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


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
