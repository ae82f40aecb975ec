"""Secrets come from the environment or a file, never from the config file, and never reach a log line."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from pipelines.config import load_config
from pipelines.errors import ConfigError
from pipelines.secrets import SecretRedactor, install_log_redaction, resolve, resolve_settings
from pipelines.sources.kafka import consumer

KAFKA = "sources=[{type: kafka, bootstrap: 'h:9092', topics: [t], client: {sasl_plain_password: %s}}]"


def test_a_literal_secret_in_the_config_is_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'sources\.0\.kafka': .*client\.sasl_plain_password: give secrets as"):
        load_config(None, [f"lake.root={tmp_path}", KAFKA % "hunter2"])
    with pytest.raises(ConfigError, match="the URI holds a password"):
        load_config(None, [f"lake.root={tmp_path}", "lake.catalog={type: sql, uri: 'postgresql://u:pw@h/db'}"])


def test_references_stay_references_in_the_config_and_resolve_where_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TM_TEST_SASL", "planted-secret-1")
    cfg = load_config(None, [f"lake.root={tmp_path}", KAFKA % "'${env:TM_TEST_SASL}'"])
    assert "planted-secret-1" not in cfg.model_dump_json()
    assert resolve_settings(cfg.sources[0].client, "client") == {"sasl_plain_password": "planted-secret-1"}
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-a-file\n")
    assert resolve(f"${{file:{secret_file}}}", "k") == "from-a-file"
    assert resolve("postgresql://u:${env:TM_TEST_SASL}@h/db", "k") == "postgresql://u:planted-secret-1@h/db"
    monkeypatch.setenv("TM_PG", "pg-secret")
    cfg = load_config(None, [f"lake.root={tmp_path}", "lake.catalog={type: sql, uri: 'sqlite:///${env:TM_PG}'}"])
    # not a URI password: the reference is kept (the relative SQLite path resolves against the config folder)
    assert cfg.lake.catalog_properties()["uri"] == f"sqlite:///{Path.cwd()}/${{env:TM_PG}}"


def test_a_missing_variable_is_a_config_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TM_NOT_SET", raising=False)
    cfg = load_config(None, [f"lake.root={tmp_path}", KAFKA % "'${env:TM_NOT_SET}'"])
    with pytest.raises(ConfigError, match="client.sasl_plain_password: environment variable TM_NOT_SET is not set"):
        consumer(cfg.sources[0])  # type: ignore[arg-type]


def test_no_log_line_shows_a_resolved_secret_a_key_id_or_a_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TM_TEST_SASL", "planted-secret-2")
    resolve("${env:TM_TEST_SASL}", "k")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(SecretRedactor())
    log = logging.getLogger("tokenmill.test.secrets")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        log.debug("connecting with %s", {"sasl_plain_password": "planted-secret-2"})
        log.debug("Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/s3, "
                  "Signature=0123abcd")
        try:
            raise RuntimeError("failed with planted-secret-2")
        except RuntimeError:
            log.exception("boom")
    finally:
        log.removeHandler(handler)
    text = out.getvalue()
    assert "planted-secret-2" not in text and "AKIAIOSFODNN7EXAMPLE" not in text and "0123abcd" not in text
    assert text.count("***") >= 4


def test_install_keeps_sdk_debug_loggers_quiet() -> None:
    root = logging.getLogger("tokenmill.test.root")
    root.addHandler(logging.NullHandler())
    logging.getLogger("botocore").setLevel(logging.DEBUG)
    install_log_redaction(root)
    assert logging.getLogger("botocore").getEffectiveLevel() >= logging.INFO
    assert any(isinstance(f, SecretRedactor) for f in root.handlers[0].filters)
