"""The storage seam: S3 settings resolved from the environment in one place, one URI normal form, and the
filesystem/client built from them."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import fs as pafs
from pydantic import ValidationError

from pipelines.errors import StorageError
from pipelines.storage import (
    S3Options,
    filesystem,
    is_s3,
    local_path,
    normalize_uri,
    parquet_dataset,
    split_s3,
)
from sharding import RemoteOptions

ENV = {
    "AWS_ENDPOINT_URL": "http://generic:9000",
    "AWS_ENDPOINT_URL_S3": "http://s3-specific:9000",
    "AWS_REGION": "eu-west-3",
    "AWS_DEFAULT_REGION": "ap-south-1",
    "AWS_ACCESS_KEY_ID": "AKIDENV",
    "AWS_SECRET_ACCESS_KEY": "secret-env",
    "AWS_SESSION_TOKEN": "token-env",
}


def test_environment_fills_what_is_unset_in_documented_order() -> None:
    r = S3Options().resolved(ENV)
    assert (r.endpoint, r.region) == ("http://s3-specific:9000", "eu-west-3")
    assert (r.access_key, r.secret_key, r.session_token) == ("AKIDENV", "secret-env", "token-env")
    fallback = S3Options().resolved({"AWS_ENDPOINT_URL": "http://generic:9000", "AWS_DEFAULT_REGION": "ap-south-1"})
    assert (fallback.endpoint, fallback.region) == ("http://generic:9000", "ap-south-1")
    assert fallback.access_key is None and fallback.secret_key is None


def test_explicit_settings_win_over_the_environment() -> None:
    r = S3Options(endpoint="http://mine:1", region="us-west-2", access_key="AK", secret_key="SK").resolved(ENV)
    assert (r.endpoint, r.region, r.access_key, r.secret_key, r.session_token) == (
        "http://mine:1", "us-west-2", "AK", "SK", None)


def test_nothing_set_gives_the_default_region_and_no_endpoint_or_keys() -> None:
    r = S3Options().resolved({})
    assert (r.endpoint, r.region, r.access_key, r.anonymous) == (None, "us-east-1", None, False)


def test_a_scheme_less_endpoint_means_https() -> None:
    r = S3Options(endpoint="minio.example.org:9000").resolved({})
    assert r.endpoint == "https://minio.example.org:9000"
    kwargs = S3Options(endpoint="minio.example.org:9000", region="x").pyarrow_kwargs()
    assert (kwargs["endpoint_override"], kwargs["scheme"]) == ("minio.example.org:9000", "https")
    http = S3Options(endpoint="http://127.0.0.1:9000/", region="x").pyarrow_kwargs()
    assert (http["endpoint_override"], http["scheme"]) == ("127.0.0.1:9000", "http")


def test_anonymous_looks_up_no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    kwargs = S3Options(anonymous=True).pyarrow_kwargs()
    assert kwargs["anonymous"] is True and "access_key" not in kwargs
    assert S3Options(anonymous=True).resolved().access_key is None


def test_keys_are_checked_and_never_shown() -> None:
    with pytest.raises(ValidationError, match="together"):
        S3Options(access_key="AK")
    with pytest.raises(ValidationError, match="session_token"):
        S3Options(session_token="t")
    with pytest.raises(ValidationError, match="anonymous"):
        S3Options(anonymous=True, access_key="AK", secret_key="SK")
    with pytest.raises(ValidationError, match="endpont"):
        S3Options(endpont="http://x")  # type: ignore[call-arg]
    shown = repr(S3Options(endpoint="http://x", access_key="AKIDSHOWN", secret_key="s3cr3t", session_token="tok"))
    assert "http://x" in shown and not any(s in shown for s in ("AKIDSHOWN", "s3cr3t", "tok"))


def test_remote_options_are_s3_options_with_the_cache_settings() -> None:
    opts = RemoteOptions(endpoint="minio:9000", region="r", cache_dir="/c", cache_limit_bytes=10,
                         extra={"connect_timeout": 3.0})
    assert isinstance(opts, S3Options)
    fs, path = filesystem("s3://bucket/a/manifest.json", opts)
    assert isinstance(fs, pafs.S3FileSystem) and path == "bucket/a/manifest.json"
    assert fs.region == "r"
    assert opts.pyarrow_kwargs()["scheme"] == "https"
    with pytest.raises(ValidationError):
        RemoteOptions(prefetch_shards=-1)


@pytest.mark.parametrize(
    ("uri", "normal"),
    [
        ("s3://bucket/a/b.json", "s3://bucket/a/b.json"),
        ("s3a://bucket/a/", "s3://bucket/a/"),
        ("S3N://bucket", "s3://bucket"),
        ("file:///data/x/../y", "file:///data/y"),
        ("file:/data/y", "file:///data/y"),
        ("file://localhost/data/y", "file:///data/y"),
        ("/data//y/", "file:///data/y"),
    ],
)
def test_normalize_uri(uri: str, normal: str) -> None:
    assert normalize_uri(uri) == normal


def test_relative_paths_are_absolute_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert normalize_uri("lake/shards") == f"file://{tmp_path}/lake/shards"
    assert normalize_uri(Path("lake")) == f"file://{tmp_path}/lake"
    assert local_path("lake/x") == f"{tmp_path}/lake/x"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("gs://bucket/x", "unsupported URI scheme 'gs'"),
        ("s3:///key", "needs a bucket"),
        ("file://otherhost/x", "host 'otherhost'"),
        ("file:relative", "absolute path"),
        ("", "empty"),
    ],
)
def test_unserved_locations_are_one_clear_error_naming_them(uri: str, message: str) -> None:
    with pytest.raises(StorageError, match=message) as info:
        normalize_uri(uri)
    assert uri in str(info.value) and "\n" not in str(info.value)


def test_helpers_agree_on_one_form(tmp_path: Path) -> None:
    assert is_s3("s3a://b/k") and not is_s3(str(tmp_path)) and not is_s3("file:///s3://x")
    assert split_s3("s3a://bucket/pre/fix/") == ("bucket", "pre/fix")
    with pytest.raises(StorageError, match="not a local path"):
        local_path("s3://b/k")
    with pytest.raises(StorageError, match="not an s3:// URI"):
        split_s3(str(tmp_path))
    fs, path = filesystem(f"file://{tmp_path}/x.json")
    assert isinstance(fs, pafs.LocalFileSystem) and path == f"{tmp_path}/x.json"


def test_a_parquet_dataset_of_local_files_reads_them_with_their_own_or_the_given_schema(tmp_path: Path) -> None:
    from pipelines import lake

    uris = []
    for part, ids in enumerate((["a", "b"], ["c"])):
        pq.write_table(pa.table({"doc_id": ids, "n": [len(i) for i in ids]}), tmp_path / f"{part}.parquet")
        uris.append((tmp_path / f"{part}.parquet").as_uri())
    uris.append(str(tmp_path / "0.parquet"))  # a plain path is a local URI too (the same file again)
    own = parquet_dataset(uris)
    assert own.schema.names == ["doc_id", "n"]
    assert own.to_table(columns=["doc_id"]).column("doc_id").to_pylist() == ["a", "b", "c", "a", "b"]
    wider = pa.schema([("doc_id", pa.string()), ("n", pa.int64()), ("text", pa.string())])
    read = parquet_dataset(uris[:2], schema=wider).to_table(columns=["doc_id", "text"])
    assert read.to_pydict() == {"doc_id": ["a", "b", "c"], "text": [None, None, None]}
    assert lake.read_files(iter(uris[:2]), ["n"]).to_pydict() == {"n": [1, 1, 1]}
    with pytest.raises(ValueError, match="at least one file"):
        lake.read_files([], ["doc_id"])
