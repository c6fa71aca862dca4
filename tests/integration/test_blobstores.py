"""Both blob stores: the filesystem, and S3 against a real S3-compatible server (moto's server
mode) started on 127.0.0.1 by the test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.blobstore.filesystem import FilesystemBlobStore
from adapters.blobstore.s3 import S3BlobStore
from service.ports import BlobNotFound


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str) -> S3BlobStore:
    store = S3BlobStore("photos", endpoint_url=s3_endpoint, access_key="test", secret_key="test", prefix="evidence/")
    store.ensure_bucket()
    return store


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    return FilesystemBlobStore(tmp_path) if request.param == "filesystem" else request.getfixturevalue("s3")


async def test_put_get_replace_delete(store) -> None:
    await store.put("m_1/case_1/ph_1.jpg", b"first", "image/jpeg")
    assert await store.get("m_1/case_1/ph_1.jpg") == b"first"
    await store.put("m_1/case_1/ph_1.jpg", b"second", "image/jpeg")
    assert await store.get("m_1/case_1/ph_1.jpg") == b"second"
    await store.delete("m_1/case_1/ph_1.jpg")
    with pytest.raises(BlobNotFound):
        await store.get("m_1/case_1/ph_1.jpg")
    await store.delete("m_1/case_1/ph_1.jpg")  # deleting what is gone is fine


async def test_missing_blob(store) -> None:
    with pytest.raises(BlobNotFound):
        await store.get("nothing/here")


async def test_s3_objects_really_are_in_the_bucket(s3: S3BlobStore) -> None:
    await s3.put("m_2/a.png", b"\x89PNG...", "image/png")
    head = s3.client.head_object(Bucket="photos", Key="evidence/m_2/a.png")
    assert head["ContentType"] == "image/png" and head["ContentLength"] == 7


@pytest.mark.parametrize("key", ["../outside", "/etc/passwd", "a/../../b", ""])
async def test_filesystem_keys_cannot_escape(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError):
        await FilesystemBlobStore(tmp_path / "store").put(key, b"x", "text/plain")


async def test_a_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FilesystemBlobStore(tmp_path)
    await store.put("k/blob", b"old", "text/plain")

    def crash(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError):
        await store.put("k/blob", b"new and half written", "text/plain")
    assert await store.get("k/blob") == b"old", "the old blob is whole"
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == ["blob"], "no temporary file left"
