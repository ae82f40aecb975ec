"""The HTML report renders in headless Chromium (Debian's chromium package) to a non-blank page."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipelines.config import Config
from pipelines.ops.html_report import write_report
from pipelines.ops.versions import create_version

_spec = importlib.util.spec_from_file_location(
    "versions_lake", Path(__file__).resolve().parents[1] / "unit" / "versions" / "versions_lake.py")
versions_lake = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(versions_lake)  # type: ignore[union-attr]
build_lake, doc = versions_lake.build_lake, versions_lake.doc

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _docs(seed: int, n: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        decision = rng.choice(["kept", "kept", "kept", "filtered", "duplicate"])
        out.append(doc(f"doc{i:04d}", decision=str(decision),
                       reason={"filtered": "length", "duplicate": "near"}.get(str(decision)),
                       kept_doc_id="doc0000" if decision == "duplicate" else None,
                       uri=f"file:///data/part-{i % 3}.jsonl", offset=i,
                       language=str(rng.choice(["en", "en", "de", "fr", "es"])),
                       n_words=int(rng.lognormal(4, 0.8)) + 1))
    return out


@pytest.mark.integration
def test_report_renders_to_a_non_blank_screenshot(lake_config: Config, tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.fail("the report was not rendered: no chromium on PATH (`make test` installs Debian's chromium "
                    "package with apt-get; or apt-get install chromium)")
    build_lake(lake_config, _docs(1, 300), per_shard=60)
    create_version(lake_config, "v1")
    build_lake(lake_config, _docs(2, 340), per_shard=60)
    html = write_report(lake_config, tmp_path / "report.html")
    png = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--window-size=1200,2400",
           f"--screenshot={png}", f"file://{html}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert png.exists(), f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
    from matplotlib.image import imread

    pixels = imread(png)[..., :3]
    assert pixels.shape[0] >= 2000 and pixels.shape[1] >= 1000
    # a blank page is one colour; a rendered report has text, cards and plot colours
    assert float(pixels.std()) > 0.05
    blue = (np.abs(pixels - np.array([0x2B, 0x7B, 0xBA]) / 255).sum(axis=-1) < 0.08).mean()
    assert blue > 0.001, "no kept-document bars (plot blue) in the screenshot"
