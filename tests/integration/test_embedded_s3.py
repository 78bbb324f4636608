"""The embedded S3 server behaves like S3 where the pipeline depends on it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from newsflow_dev.embedded_s3 import EmbeddedS3, S3Endpoint

MIB = 1024 * 1024


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = exc.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_wrong_secret_is_rejected(s3_bucket: tuple[S3Endpoint, str]) -> None:
    endpoint, bucket = s3_bucket
    wrong = S3Endpoint(endpoint.endpoint_url, endpoint.access_key, "not-the-secret")
    with pytest.raises(ClientError) as exc:
        wrong.client(max_attempts=1).list_objects_v2(Bucket=bucket)
    code, status = _error(exc)
    assert code in {"AccessDenied", "SignatureDoesNotMatch"}
    assert status == 403


def test_unknown_access_key_is_rejected(s3_bucket: tuple[S3Endpoint, str]) -> None:
    endpoint, bucket = s3_bucket
    stranger = S3Endpoint(endpoint.endpoint_url, "nobody", endpoint.secret_key)
    with pytest.raises(ClientError) as exc:
        stranger.client(max_attempts=1).put_object(Bucket=bucket, Key="k", Body=b"x")
    assert _error(exc)[1] == 403


def test_default_credential_chain_reaches_server(s3_bucket: tuple[S3Endpoint, str]) -> None:
    _, bucket = s3_bucket
    # A fresh session reads AWS_* from the environment the fixture set.
    client = boto3.session.Session().client("s3", config=Config(s3={"addressing_style": "path"}))
    client.put_object(Bucket=bucket, Key="via-env", Body=b"hello")
    assert client.get_object(Bucket=bucket, Key="via-env")["Body"].read() == b"hello"


def test_if_none_match_refuses_overwrite(s3_bucket: tuple[S3Endpoint, str]) -> None:
    endpoint, bucket = s3_bucket
    s3 = endpoint.client()
    s3.put_object(Bucket=bucket, Key="doc.json", Body=b"original", IfNoneMatch="*")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="doc.json", Body=b"replacement", IfNoneMatch="*")
    assert _error(exc) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="doc.json")["Body"].read() == b"original"


def test_list_objects_v2_with_prefix(s3_bucket: tuple[S3Endpoint, str]) -> None:
    endpoint, bucket = s3_bucket
    s3 = endpoint.client()
    keys = ["raw/2024/a.json", "raw/2024/b.json", "raw/2025/c.json", "rawx/d.json", "out/e.json"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="raw/")
    # Compared as sets: SeaweedFS does not list in plain byte order (see module docstring).
    assert {o["Key"] for o in listed["Contents"]} == {k for k in keys if k.startswith("raw/")}
    assert listed["KeyCount"] == 3
    nested = s3.list_objects_v2(Bucket=bucket, Prefix="raw/2024/")
    assert {o["Key"] for o in nested["Contents"]} == {"raw/2024/a.json", "raw/2024/b.json"}
    assert s3.list_objects_v2(Bucket=bucket, Prefix="missing/")["KeyCount"] == 0


def test_copy_object(s3_bucket: tuple[S3Endpoint, str]) -> None:
    endpoint, bucket = s3_bucket
    s3 = endpoint.client()
    etag = s3.put_object(Bucket=bucket, Key="staging/x", Body=b"payload")["ETag"]
    source = {"Bucket": bucket, "Key": "staging/x"}
    s3.copy_object(Bucket=bucket, Key="final/x", CopySource=source, CopySourceIfMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="final/x")["Body"].read() == b"payload"
    with pytest.raises(ClientError) as exc:
        stale = '"' + "0" * 32 + '"'
        s3.copy_object(Bucket=bucket, Key="final/y", CopySource=source, CopySourceIfMatch=stale)
    assert _error(exc) == ("PreconditionFailed", 412)
    assert s3.list_objects_v2(Bucket=bucket, Prefix="final/y")["KeyCount"] == 0


def test_delete_of_missing_key_succeeds(s3_bucket: tuple[S3Endpoint, str]) -> None:
    endpoint, bucket = s3_bucket
    response = endpoint.client().delete_object(Bucket=bucket, Key="never/written")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_multipart_upload_round_trip(s3_bucket: tuple[S3Endpoint, str]) -> None:
    endpoint, bucket = s3_bucket
    s3 = endpoint.client()
    parts_data = [os.urandom(5 * MIB), os.urandom(5 * MIB)]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="big.bin")["UploadId"]
    parts = []
    for number, data in enumerate(parts_data, start=1):
        etag = s3.upload_part(
            Bucket=bucket, Key="big.bin", UploadId=upload_id, PartNumber=number, Body=data
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    s3.complete_multipart_upload(
        Bucket=bucket, Key="big.bin", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    obj = s3.get_object(Bucket=bucket, Key="big.bin")
    assert obj["ContentLength"] == 10 * MIB
    assert obj["Body"].read() == b"".join(parts_data)


def test_stop_kills_process_and_removes_temp_dir() -> None:
    server = EmbeddedS3()
    with server as endpoint:
        pid, data_dir = server.pid, server.data_dir
        assert pid is not None and data_dir is not None and data_dir.is_dir()
        assert endpoint.client().list_buckets()["Buckets"] == []
    assert _process_gone(pid)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # nothing left in weed's process group either
    assert not data_dir.exists()
    assert server.pid is None


def test_given_data_dir_is_kept_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "s3"
    server = EmbeddedS3(data_dir=data_dir, access_key="fixedkey", secret_key="fixedsecret")
    with server as endpoint:
        assert stat.S_IMODE((data_dir / "s3.json").stat().st_mode) == 0o600
        server.create_bucket("kept")
        endpoint.client().put_object(Bucket="kept", Key="k", Body=b"persisted")
        pid = server.pid
    assert pid is not None and _process_gone(pid)
    assert (data_dir / "s3.json").is_file()
    # A restart on the same directory (new ports) still serves the earlier data.
    with EmbeddedS3(data_dir=data_dir, access_key="fixedkey", secret_key="fixedsecret") as again:
        assert again.client().get_object(Bucket="kept", Key="k")["Body"].read() == b"persisted"
    assert data_dir.is_dir()
