"""The training record that lets train-tokenizer keep a tokenizer trained with the same settings."""

from __future__ import annotations

from pathlib import Path

from pipelines.cli import build_parser
from pipelines.cli.args import load as _config
from pipelines.stages.tokenize.train import save_tokenizer, train_bpe, training_reason, write_training_record

SETTINGS = {"train": {"vocab_size": 300, "min_frequency": 1, "max_docs": None, "seed": 0}, "eod_token": "<|e|>"}


def trained(tmp_path: Path) -> Path:
    tok = train_bpe(["the cat sat on the mat", "the dog sat on the log"], vocab_size=300, min_frequency=1)
    return save_tokenizer(tok, tmp_path / "tok" / "tokenizer.json")


def test_a_tokenizer_with_a_matching_record_is_kept(tmp_path: Path) -> None:
    path = trained(tmp_path)
    assert training_reason(path, SETTINGS) == f"{path} has no training record (tokenizer.json.train.json)"
    record = write_training_record(path, SETTINGS)
    assert record == path.with_name("tokenizer.json.train.json")
    assert training_reason(path, SETTINGS) is None
    assert training_reason(f"file://{path}", SETTINGS) is None


def test_other_settings_or_an_edited_file_retrain(tmp_path: Path) -> None:
    path = trained(tmp_path)
    write_training_record(path, SETTINGS)
    other = {**SETTINGS, "train": {**SETTINGS["train"], "vocab_size": 400}}
    assert training_reason(path, other) == f"training settings changed since {path} was trained"
    path.write_text(path.read_text().replace("<|endoftext|>", "<|eot|>"))
    assert training_reason(path, SETTINGS) == f"{path} changed since it was trained"
    path.unlink()
    assert training_reason(path, SETTINGS) == f"no tokenizer at {path}"


def test_retrain_flag_sets_the_config_key(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("lake: {root: lake}\n")
    for argv, retrain in ((["--retrain"], True), ([], False)):
        args = build_parser().parse_args(["train-tokenizer", "--config", str(params), *argv])
        assert _config(args).tokenize.train.retrain is retrain
