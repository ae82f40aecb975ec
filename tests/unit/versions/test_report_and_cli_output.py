"""What a user reads: `version create` with a taken name prints its one-line error alone; the report's change
section says there is no change instead of drawing an empty chart, and its stage table shows the last run of
each stage that did work."""

from __future__ import annotations

import re
from pathlib import Path

from pipelines.config import Config
from pipelines.ops.html_report import write_report
from pipelines.ops.versions import create_version
from pipelines.stages.report import StageReport


def test_a_taken_version_name_prints_only_the_error(cli, lake_config: Config, lake_builder, first_docs,
                                                      second_docs, capsys) -> None:
    lake_builder(lake_config, first_docs)
    assert cli("version", "create", "v1") == 0
    lake_builder(lake_config, second_docs)
    assert cli("version", "create", "v2") == 0
    capsys.readouterr()
    assert cli("version", "create", "v2") == 6
    out, err = capsys.readouterr()
    assert out == ""
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and "version 'v2' already exists" in lines[0]


def test_no_change_is_said_not_drawn_and_stage_runs_show_the_last_work(lake_config: Config, lake_builder,
                                                                         first_docs, tmp_path) -> None:
    lake_builder(lake_config, first_docs)
    create_version(lake_config, "v1")
    history = Path(lake_config.lake.root) / "runs" / "ingest.jsonl"
    StageReport(stage="ingest", counts={"records_read": 6270}, snapshots={"raw_docs": 1}).record_run(history)
    StageReport(stage="ingest", counts={"records_read": 0}, snapshots={"raw_docs": 1}).record_run(history)
    page = write_report(lake_config, tmp_path / "report.html").read_text()
    change = page[page.index("<h2>Change against v1</h2>"):]
    assert "0 documents added (0 tokens), 0 removed (0 tokens)" in change
    assert "The kept documents of current are those of v1." in change
    assert "documents added and removed by reason" not in page  # no empty chart
    assert len(re.findall(r"data:image/png", page)) == 7  # six panels plus the similarities of near removals
    stages = page[page.index("<h2>Stage runs</h2>"):]
    assert "records_read=6,270" in stages and "records_read=0" not in stages
    assert "(nothing new)" in stages
