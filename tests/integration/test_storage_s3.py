"""The storage seam against a real S3 endpoint (moto's server): settings taken from the environment alone
reach the same objects as explicit ones, through pyarrow and through boto3 alike."""

from __future__ import annotations

import pytest

from pipelines.storage import S3Options, filesystem, s3_client
from sharding.write.sinks import list_names, read_object, write_object

pytestmark = pytest.mark.integration


def test_environment_only_settings_reach_what_explicit_ones_wrote(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit = S3Options(endpoint=s3_endpoint, region="us-east-1", access_key="testing", secret_key="testing")
    s3_client(explicit).create_bucket(Bucket="seam")
    write_object("s3a://seam/v1", "manifest.json", b'{"format": "x"}', s3=explicit)

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    fs, path = filesystem("s3://seam/v1/manifest.json")
    with fs.open_input_stream(path) as f:
        assert f.read() == b'{"format": "x"}'
    assert read_object("s3://seam/v1", "manifest.json") == b'{"format": "x"}'
    assert list_names("s3://seam/v1") == ["manifest.json"]
