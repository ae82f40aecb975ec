"""Secrets in the config: given by reference, resolved where used, and kept out of files and logs.

A secret setting (a Kafka SASL/SSL password, a catalog password, token or credential) is written in
params.yaml as a reference, never as its value, because params.yaml and dvc.lock are committed:

- `${env:NAME}`: the value of environment variable NAME;
- `${file:PATH}`: the contents of the file at PATH (a mounted secret), without a trailing newline.

`check_no_literal_secrets` refuses a literal value for a setting whose name says it is a secret, and a URI
holding a password (`postgresql://user:pw@host/db`); `resolve_settings` replaces references by their values
where a client is built. Every value resolved is remembered by `SecretRedactor`, which the CLI installs on
its log handlers with `install_log_redaction`: no log line, at any level, shows a resolved secret or an AWS
access key id, and botocore's and urllib3's debug output (request headers, credential lookups) is not
emitted at all.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.errors import ConfigError

_REFERENCE = re.compile(r"^\$\{(env|file):([^}]+)\}$")
_SECRET_WORDS = ("password", "passwd", "secret", "token", "credential", "access_key", "access-key", "private_key")
_URI_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:\s]*:([^/@\s]+)@", re.IGNORECASE)
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
_SIGNATURE = re.compile(r"(Credential=|Signature=|X-Amz-Security-Token[=:]\s*)[^\s,&'\"]+")
_RESOLVED: set[str] = set()

# Libraries whose DEBUG output includes signed request headers or where credentials were found.
NOISY_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "aiobotocore")


def is_reference(value: object) -> bool:
    return isinstance(value, str) and _REFERENCE.match(value) is not None


def is_secret_key(name: str) -> bool:
    """Whether a setting called `name` holds a secret, by its name.

    >>> is_secret_key("sasl_plain_password"), is_secret_key("ssl_password"), is_secret_key("client_id")
    (True, True, False)
    """
    lower = name.lower()
    return any(word in lower for word in _SECRET_WORDS)


def check_no_literal_secrets(settings: Mapping[str, Any], where: str) -> None:
    """Raise ValueError naming `where.<key>` for a secret given as a literal value (see the module doc)."""
    for key, value in settings.items():
        if not isinstance(value, str) or is_reference(value):
            continue
        if is_secret_key(key) and value:
            raise ValueError(f"{where}.{key}: give secrets as ${{env:NAME}} or ${{file:PATH}}, not as a value "
                             "(the config file and dvc.lock are committed)")
        m = _URI_PASSWORD.match(value)
        if m and not is_reference(m.group(1)) and not m.group(1).startswith("${"):
            raise ValueError(f"{where}.{key}: the URI holds a password; write it as ${{env:NAME}} in its place")


def resolve(value: str, where: str) -> str:
    """`value` with `${env:NAME}` / `${file:PATH}` (whole value, or a URI password) replaced by the secret.
    Raises ConfigError naming `where` and the variable or file when it is missing."""
    m = _REFERENCE.match(value)
    if m is None:
        pw = _URI_PASSWORD.match(value)
        if pw and _REFERENCE.match(pw.group(1)):
            secret = resolve(pw.group(1), where)
            return value[: pw.start(1)] + secret + value[pw.end(1):]
        return value
    kind, name = m.groups()
    if kind == "env":
        if name not in os.environ:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        secret = os.environ[name]
    else:
        try:
            secret = Path(name).read_text().rstrip("\n")
        except OSError as exc:
            raise ConfigError(f"{where}: secret file {name} cannot be read ({type(exc).__name__})") from None
    if secret:
        _RESOLVED.add(secret)
    return secret


def resolve_settings(settings: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A copy of `settings` with every string value passed through `resolve`."""
    return {k: resolve(v, f"{where}.{k}") if isinstance(v, str) else v for k, v in settings.items()}


def redact(text: str) -> str:
    """`text` with resolved secrets, AWS access key ids and request signatures replaced by `***`."""
    for secret in sorted(_RESOLVED, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _AWS_KEY_ID.sub("***", text)
    return _SIGNATURE.sub(r"\1***", text)


class SecretRedactor(logging.Filter):
    """A handler filter that rewrites each record's message through `redact` (arguments merged first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_log_redaction(root: logging.Logger | None = None) -> None:
    """Redact every handler of `root` (default: the root logger) and keep the noisy SDK loggers at INFO or
    above, whatever the level of the root."""
    root = root or logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, SecretRedactor) for f in handler.filters):
            handler.addFilter(SecretRedactor())
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)
