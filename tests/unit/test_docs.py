"""What README.md and docs/ tell a user to run or open exists in this checkout: make targets, tokenmill
subcommands, pip extras, benchmark modules, repository paths, and the manifest `make demo` writes."""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

import pytest

from pipelines.cli import build_parser
from pipelines.cli.demo import DEMO_OVERRIDES
from pipelines.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _code(path: Path) -> str:
    """The fenced blocks and inline code spans of a Markdown file: what a reader copies and runs."""
    text = path.read_text(encoding="utf-8")
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    return "\n".join(blocks + re.findall(r"`([^`\n]+)`", prose))


CODE = {p.relative_to(ROOT).as_posix(): _code(p) for p in DOCS}


def _found(pattern: str) -> list[tuple[str, str]]:
    return [(doc, m) for doc, code in CODE.items() for m in re.findall(pattern, code)]


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_the_docs_are_found() -> None:
    assert "README.md" in CODE and "docs/loader.md" in CODE and all(CODE.values())


def test_documented_make_targets_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    used = _found(r"(?<![\w-])make ([a-z][a-z-]*)")
    assert used
    assert [(doc, t) for doc, t in used if t not in targets] == []


def test_documented_tokenmill_commands_exist() -> None:
    commands = _subcommands(build_parser())
    used = _found(r"(?:^|[\s`])tokenmill ([a-z][a-z|-]*)")
    assert used
    missing = [(doc, c) for doc, names in used for c in names.split("|") if c not in commands]
    assert missing == []
    actions = _subcommands(commands["version"])
    used_actions = _found(r"tokenmill version ([a-z]+)")
    assert [(doc, a) for doc, a in used_actions if a not in actions] == []


def test_documented_extras_exist() -> None:
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    used = _found(r"(?:tokenmill|\.)\[([a-z,]+)\]")
    assert [(doc, e) for doc, names in used for e in names.split(",") if e not in extras] == []


def test_documented_benchmark_modules_and_paths_exist() -> None:
    modules = _found(r"python -m (benchmarks\.[a-z_]+)")
    assert modules
    assert [(doc, m) for doc, m in modules if not (ROOT / (m.replace(".", "/") + ".py")).exists()] == []
    paths = _found(r"(?<![\w/.])((?:benchmarks|examples|docs|data|jobs|tests|pipelines|sharding|dedup)/[\w./-]*\w/?)")
    assert paths
    assert [(doc, p) for doc, p in paths if not (ROOT / p).exists()] == []


@pytest.mark.parametrize("doc", ["README.md", "docs/loader.md"])
def test_the_loader_example_reads_the_manifest_make_demo_writes(doc: str, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # make demo runs from the repository root
    demo = load_config(str(ROOT / "params.yaml"), DEMO_OVERRIDES)
    written = Path(demo.shards_uri()) / "manifest.json"
    shown = re.findall(r"TokenLoader\(\"([^\"]+manifest\.json)\"", CODE[doc])
    assert shown, f"{doc} shows no TokenLoader example reading a manifest"
    assert (ROOT / shown[0]).resolve() == written.resolve()
