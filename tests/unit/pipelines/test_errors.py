"""One error base: every domain error is a TokenmillError with its own exit code, documented in
docs/errors.md, printed by the CLI as one line; the base and the storage seam import nothing heavy."""

from __future__ import annotations

import importlib
import pickle
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pipelines.cli as cli
import pipelines.cli.audit as cli_audit
from dedup.errors import DedupError
from pipelines.errors import StageOutputError, StorageError, TokenmillError
from sharding import CorruptShardError, ManifestError

REPO = Path(__file__).resolve().parents[3]


def _all_errors() -> list[type[TokenmillError]]:
    for package in ("pipelines", "dedup", "sharding"):
        for info in pkgutil.walk_packages([str(REPO / package)], prefix=f"{package}."):
            try:
                importlib.import_module(info.name)
            except ModuleNotFoundError as exc:  # an optional extra (torch) that this machine lacks
                if exc.name != "torch":
                    raise
    found: list[type[TokenmillError]] = []
    todo: list[type[TokenmillError]] = [TokenmillError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_direct_subclasses_have_distinct_exit_codes_and_docs_list_them() -> None:
    errors = _all_errors()
    direct = [c for c in errors if TokenmillError in c.__bases__]
    codes = [c.exit_code for c in direct]
    assert len(codes) == len(set(codes)), sorted((c.exit_code, c.__name__) for c in direct)
    table = (REPO / "docs" / "errors.md").read_text()
    documented = {name: int(code) for code, name in re.findall(r"^\| (\d+) \| `(\w+)`", table, re.M)}
    classes: list[type[TokenmillError]] = [TokenmillError, *direct]
    assert documented == {c.__name__: c.exit_code for c in classes}


@pytest.mark.parametrize("cls", [c for c in _all_errors() if TokenmillError in c.__bases__], ids=lambda c: c.__name__)
def test_the_cli_exits_with_each_error_s_own_code(cls: type[TokenmillError], monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """What the shell sees: the CLI's status for a command that raises the error is the error's code, never
    Python's 1 (an uncaught exception) nor a signal's 128 + n; 2, argparse's usage error, only for a config
    error (the same family: the invocation is wrong)."""
    import argparse

    def failing(_args: argparse.Namespace) -> int:
        raise cls(f"planted {cls.__name__}")

    parser = argparse.ArgumentParser()
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.set_defaults(func=failing)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    status = cli.main([])
    assert status == cls.exit_code and status != 1 and 0 < status < 128
    assert (status == 2) == (cls.__name__ == "ConfigError")
    assert f"planted {cls.__name__}" in capsys.readouterr().err


def test_domain_errors_of_every_package_are_tokenmill_errors() -> None:
    assert issubclass(DedupError, RuntimeError) and DedupError.exit_code == 9
    assert issubclass(ManifestError, ValueError) and ManifestError.exit_code == 11
    assert issubclass(CorruptShardError, ValueError) and CorruptShardError.exit_code == 12
    for cls in (DedupError, ManifestError, CorruptShardError, StageOutputError, StorageError):
        assert issubclass(cls, TokenmillError)


def test_corrupt_shard_error_survives_a_pickle_round_trip() -> None:
    err = CorruptShardError("shard-000003.tar", "sha256 mismatch")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is CorruptShardError and str(back) == "corrupt shard shard-000003.tar: sha256 mismatch"
    assert back.exit_code == 12


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (DedupError("components did not converge in max_iterations=1 rounds"), 9,
         "tokenmill: components did not converge in max_iterations=1 rounds"),
        (ManifestError("/lake/shards/manifest.json: no shards"), 11,
         "tokenmill: /lake/shards/manifest.json: no shards"),
        (CorruptShardError("shard-000001.tar", "sha256 abc\nexpected def"), 12,
         "tokenmill: corrupt shard shard-000001.tar: sha256 abc expected def"),
        (StageOutputError("curate wrote 9 decisions / 3 clean docs"), 10,
         "tokenmill: curate wrote 9 decisions / 3 clean docs"),
    ],
)
def test_cli_prints_a_tokenmill_error_as_one_line_with_its_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: TokenmillError, code: int,
    line: str,
) -> None:
    def failing(args: object) -> int:
        raise error

    monkeypatch.setattr(cli_audit, "cmd_audit", failing)
    assert cli.main(["audit"]) == code
    assert capsys.readouterr().err.splitlines() == [line]


def test_a_failed_spark_task_prints_the_workers_own_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the shape of pyspark's PythonException text: Spark's header, then the worker's traceback
    text = ("An exception was thrown from the Python worker. Please see the stack trace below.\n"
            "Traceback (most recent call last):\n  File \"/x/pyarrow/parquet/core.py\", line 1, in write_table\n"
            "OSError: [Errno 28] No space left on device: '/lake/tmp/curate-1/part-0.parquet'\n")

    def failing(args: object) -> int:
        raise RuntimeError(text)

    monkeypatch.setattr(cli_audit, "cmd_audit", failing)
    assert cli.main(["audit"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "tokenmill: audit failed: OSError: [Errno 28] No space left on device: "
        "'/lake/tmp/curate-1/part-0.parquet' (run with -v for details)"]


def test_cli_registers_the_version_commands() -> None:
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert commands is not None and {"version", "lineage", "report", "monitor"} <= set(commands)


def test_error_base_storage_and_loader_import_without_spark_iceberg_or_torch() -> None:
    code = (
        "import sys\n"
        "import pipelines.errors, pipelines.storage, dedup.errors, sharding.errors\n"
        "from sharding import TokenLoader, RemoteOptions, CorruptShardError, ManifestError\n"
        "heavy = sorted(m for m in ('pyspark', 'pyiceberg', 'torch', 'boto3') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                          check=True)
    assert proc.stdout.strip() == ""
