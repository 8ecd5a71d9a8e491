"""Blob stores: local files and S3 (against moto's real HTTP server) behave the same."""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from voxvault.errors import VoxError
from voxvault.store import BlobNotFound, BlobStore, open_blob_store
from voxvault.store.blobs import LocalBlobStore, S3BlobStore

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_client(s3_endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=s3_endpoint, **CREDENTIALS)


@pytest.fixture
def bucket(s3_client: Any) -> str:
    name = f"vv-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    client = request.getfixturevalue("s3_client")
    return S3BlobStore(request.getfixturevalue("bucket"), "tenant-a/blobs", client=client)


def test_put_get_overwrite_exists_delete(store: BlobStore) -> None:
    payload = bytes(range(256)) * 3
    assert not store.exists("voices/v1/style.npy")
    store.put("voices/v1/style.npy", payload)
    assert store.exists("voices/v1/style.npy")
    assert store.get("voices/v1/style.npy") == payload
    store.put("voices/v1/style.npy", b"second")
    assert store.get("voices/v1/style.npy") == b"second"
    store.put("empty", b"")
    assert store.get("empty") == b""
    store.delete("voices/v1/style.npy")
    assert not store.exists("voices/v1/style.npy")
    store.delete("voices/v1/style.npy")  # already gone: still fine


def test_missing_blob_is_a_404_not_found(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound) as err:
        store.get("nothing/here")
    assert isinstance(err.value, VoxError)
    assert (err.value.code, err.value.status, err.value.key) == ("not_found", 404, "nothing/here")
    assert "nothing/here" not in str(err.value.to_dict())


def test_list_by_prefix_in_sorted_order(store: BlobStore) -> None:
    for key in ["voices/b/style", "voices/a/style", "voices/a/embedding", "voicesx", "jobs/1/out.wav"]:
        store.put(key, b"x")
    assert list(store.list()) == sorted(
        ["voices/b/style", "voices/a/style", "voices/a/embedding", "voicesx", "jobs/1/out.wav"]
    )
    assert list(store.list("voices/")) == ["voices/a/embedding", "voices/a/style", "voices/b/style"]
    assert list(store.list("voices/a")) == ["voices/a/embedding", "voices/a/style"]
    assert list(store.list("voices")) == ["voices/a/embedding", "voices/a/style", "voices/b/style", "voicesx"]
    assert list(store.list("nothing/")) == []


BAD_KEYS = [
    "",
    "../escape",
    "a/../../escape",
    "/etc/passwd",
    "a//b",
    "a/./b",
    ".hidden",
    "a/b/",
    "a\\b",
    "a\x00b",
    "spaces are not keys",
    "x" * 600,
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_unsafe_keys_are_refused_by_every_operation(store: BlobStore, key: str) -> None:
    for call in (
        lambda: store.put(key, b"x"),
        lambda: store.get(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
    ):
        with pytest.raises(VoxError) as err:
            call()
        assert err.value.code == "invalid_blob_key"
    with pytest.raises(VoxError):
        store.list("../")


def test_local_store_writes_nothing_outside_its_root(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "root")
    for key in BAD_KEYS:
        with pytest.raises(VoxError):
            store.put(key, b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]
    assert list((tmp_path / "root").iterdir()) == []


def test_local_store_refuses_symlinks_out_of_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store = LocalBlobStore(tmp_path / "root")
    os.symlink(outside, tmp_path / "root" / "link")
    with pytest.raises(VoxError):
        store.put("link/secret", b"x")
    assert list(outside.iterdir()) == []


def test_local_put_leaves_no_temp_files_and_delete_prunes_folders(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put("voices/erase-me/style", b"a")
    store.put("voices/erase-me/style", b"b")
    store.put("voices/keep/style", b"c")
    assert sorted(p.name for p in (tmp_path / "voices" / "erase-me").iterdir()) == ["style"]
    store.delete("voices/erase-me/style")
    # No trace of the erased voice's id remains in the tree.
    assert not (tmp_path / "voices" / "erase-me").exists()
    assert (tmp_path / "voices" / "keep" / "style").read_bytes() == b"c"


def test_local_list_skips_in_progress_writes(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put("a/done", b"1")
    (tmp_path / "a" / ".done.abc.tmp").write_bytes(b"partial")
    assert list(store.list()) == ["a/done"]


def test_s3_prefixes_isolate_tenants(s3_client: Any, bucket: str) -> None:
    first = S3BlobStore(bucket, "one", client=s3_client)
    second = S3BlobStore(bucket, "/two/", client=s3_client)
    first.put("k", b"1")
    second.put("k", b"2")
    assert (first.get("k"), second.get("k")) == (b"1", b"2")
    assert list(first.list()) == ["k"]
    assert s3_client.get_object(Bucket=bucket, Key="two/k")["Body"].read() == b"2"


def test_open_blob_store_file_url(tmp_path: Path) -> None:
    store = open_blob_store((tmp_path / "blob root").as_uri())
    assert isinstance(store, LocalBlobStore)
    store.put("a", b"1")
    assert (tmp_path / "blob root" / "a").read_bytes() == b"1"


def test_open_blob_store_s3_url(
    s3_endpoint: str, bucket: str, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = open_blob_store(f"s3://{bucket}/deploy/blobs", s3_endpoint_url=s3_endpoint)
    assert isinstance(store, S3BlobStore)
    store.put("voices/v/style", b"s")
    assert s3_client.get_object(Bucket=bucket, Key="deploy/blobs/voices/v/style")["Body"].read() == b"s"
    assert store.exists("voices/v/style")


@pytest.mark.parametrize("url", ["ftp://host/x", "file://host/x", "/plain/path", "s3:///no-bucket"])
def test_open_blob_store_refuses_bad_urls(url: str) -> None:
    with pytest.raises(VoxError) as err:
        open_blob_store(url)
    assert err.value.code == "invalid_blob_url"


def test_s3_without_boto3_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes `import boto3` fail like an absent package
    with pytest.raises(VoxError) as err:
        S3BlobStore("bucket")
    assert err.value.code == "missing_dependency"
    assert "voxvault[s3]" in err.value.message
