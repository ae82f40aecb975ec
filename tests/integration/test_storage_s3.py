"""The storage seam against a real S3 endpoint (moto's server): settings taken from the environment alone
reach the same objects as explicit ones, through pyarrow and through boto3 alike."""

from __future__ import annotations

import pytest

from pipelines.storage import S3Options, delete_tree, filesystem, s3_client
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


def test_deleting_a_folder_leaves_no_marker_and_spares_its_neighbours(s3_endpoint: str) -> None:
    """pyarrow re-creates an empty `parent/` marker when a folder goes; delete_tree removes that marker (so a
    cleaned-up scratch leaves nothing) but never another run's objects under the same parent."""
    opts = S3Options(endpoint=s3_endpoint, region="us-east-1", access_key="testing", secret_key="testing")
    client = s3_client(opts)
    client.create_bucket(Bucket="tidy")
    fs, _ = filesystem("s3://tidy", opts)
    for key in ("w/steps/run-a/step/part-0.parquet", "w/steps/run-a/step/_SUCCESS", "w/steps/run-b/part-0.parquet"):
        with fs.open_output_stream(f"tidy/{key}") as out:
            out.write(b"x")

    def keys() -> list[str]:
        return sorted(o["Key"] for o in client.list_objects_v2(Bucket="tidy").get("Contents", []))

    delete_tree("s3://tidy/w/steps/run-a", opts)
    assert keys() == ["w/steps/run-b/part-0.parquet"]
    delete_tree("s3://tidy/w/steps/run-b", opts)
    assert keys() == []
    delete_tree("s3://tidy/w/steps/run-b", opts)  # a missing folder is fine
