"""Object storage behind one small interface: a local directory or an S3 bucket/prefix.

Writes are atomic per object on both (S3 PUT; temp file + rename locally), and
`put_bytes(..., if_absent=True)` is an atomic create, which is what commits build on.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlsplit


class StoreError(Exception):
    """The store cannot be used (unreachable, missing bucket, no permission)."""


class StoreUnusable(StoreError):
    """The store as configured can never work (no such bucket or store, access denied, a
    bad URI): retrying cannot help, so schedulers fail at once instead of retrying."""


class StoreMissing(StoreUnusable):
    """Nothing was ever written at the store URI (most often a typo in it)."""


class Store(Protocol):
    uri: str
    # How many small requests are worth having in flight at once (key lookups, markers).
    request_threads: int

    def check(self) -> None: ...
    def put_bytes(
        self, key: str, data: bytes, *, if_absent: bool = False, durable: bool = True
    ) -> bool: ...
    def sync(self) -> None: ...
    def put_file(self, key: str, path: Path) -> None: ...
    def get_bytes(self, key: str) -> bytes | None: ...
    def get_range(self, key: str, offset: int, length: int) -> bytes | None: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> Iterator[str]: ...
    def copy(self, src: str, dst: str) -> None: ...
    def delete(self, key: str) -> None: ...
    def url_for(self, key: str) -> str: ...
    def table_uri(self, name: str) -> str: ...
    def storage_options(self) -> dict[str, str]: ...


TMP_PREFIX = "_tmp/"
STALE_TMP_SECONDS = 3600  # no write takes this long: older temp files are a dead run's


class LocalStore:
    """A directory. Temp files live under _tmp/ so a reader's glob never sees them."""

    # A stat or a small write answers from the page cache in microseconds: threads would
    # only take turns at the interpreter lock (2,500 markers: 0.3 s on one thread, 0.6-0.7 s
    # of wall time and three times the CPU on sixteen).
    request_threads = 1

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)
        self._inside = os.path.join(str(self.root), "")  # the root with one trailing separator
        self._tmp_dir_made = False

    def _path(self, key: str) -> Path:
        """The key's file. Checked lexically, without a system call: this runs for every
        read and write (a run makes thousands). Symbolic links inside the store directory
        are the operator's and are followed."""
        path = os.path.normpath(os.path.join(self._inside, key))
        if not path.startswith(self._inside):
            raise ValueError(f"key escapes the store root: {key!r}")
        return Path(path)

    def check(self) -> None:
        try:
            (self.root / TMP_PREFIX).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnusable(f"cannot use store directory {self.root}: {exc.strerror}") from None
        if not os.access(self.root, os.W_OK):
            raise StoreUnusable(f"store directory {self.root} is not writable")
        self._sweep_tmp()

    def _sweep_tmp(self) -> None:
        """Temp files of writes that a killed process never finished."""
        cutoff = time.time() - STALE_TMP_SECONDS
        for path in (self.root / TMP_PREFIX).glob("*.tmp"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()

    def _new_tmp(self) -> tuple[Path, BinaryIO]:
        """A new temp file, open for writing. Its directory is made once per process, and
        again if something removed it since."""
        tmp_dir = self.root / TMP_PREFIX
        for attempt in range(2):
            if attempt or not self._tmp_dir_made:
                tmp_dir.mkdir(parents=True, exist_ok=True)
                self._tmp_dir_made = True
            tmp = tmp_dir / f"{uuid.uuid4().hex}.tmp"
            try:
                return tmp, open(tmp, "xb")
            except FileNotFoundError:
                if attempt:
                    raise
        raise AssertionError("unreachable: the second attempt returns or raises")

    @contextlib.contextmanager
    def _writing(self, key: str) -> Iterator[tuple[Path, BinaryIO]]:
        """A temp file for one write: removed whatever happens, and a failed write (disk
        full, read-only file system) is one StoreError naming the key."""
        try:
            tmp, fh = self._new_tmp()
        except OSError as exc:
            raise _write_error(self.root, key, exc) from None
        try:
            with fh:
                yield tmp, fh
        except OSError as exc:
            raise _write_error(self.root, key, exc) from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def put_bytes(
        self, key: str, data: bytes, *, if_absent: bool = False, durable: bool = True
    ) -> bool:
        """Write `key` atomically: a reader sees all of it or nothing.

        Durable (the default): its content is on disk before it has its name, and the name
        once this returns. `durable=False` leaves both to the next `sync()`, which makes many
        small writes durable at once. A crash before that sync can lose such a write, or,
        for a new name (`if_absent`), leave it empty: whoever relies on these writes must
        redo them after a crash before the sync (`KeyIndex.roll_forward` does). A write that
        replaces a name still syncs its content first, so a crash never turns what was there
        into an empty file."""
        dest = self._path(key)
        with self._writing(key) as (tmp, fh):
            fh.write(data)
            if durable or not if_absent:
                fh.flush()
                os.fsync(fh.fileno())
            fh.close()
            return self._publish(tmp, dest, if_absent, durable)

    def sync(self) -> None:
        """Make every write so far durable: one syncfs(2) of the store's file system (where
        the C library has it, else sync(2)), instead of a directory fsync per small file."""
        try:
            _sync_file_system(self.root)
        except OSError as exc:
            raise _write_error(self.root, "(sync)", exc) from None

    def put_file(self, key: str, path: Path) -> None:
        dest = self._path(key)
        with self._writing(key) as (tmp, fh):
            fh.close()
            shutil.copyfile(path, tmp)
            with open(tmp, "rb+") as copied:
                os.fsync(copied.fileno())
            self._publish(tmp, dest, False, True)

    def _publish(self, tmp: Path, dest: Path, if_absent: bool, durable: bool) -> bool:
        for attempt in range(10):
            # a delete may prune the directory between mkdir and the rename, or a parent
            # between mkdir's own steps (FileNotFoundError, FileExistsError): the rename's
            # FileNotFoundError retries
            with contextlib.suppress(FileExistsError, FileNotFoundError):
                dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                if if_absent:
                    os.link(tmp, dest)  # atomic create-if-absent
                else:
                    os.replace(tmp, dest)
            except FileExistsError:
                return False  # only link raises it: the key exists
            except FileNotFoundError:
                if attempt == 9 or not tmp.exists():
                    raise
                continue
            if durable:
                _fsync_dir(dest.parent)
            return True
        raise AssertionError("unreachable: the last attempt returns or raises")

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {key} in store {self.root}: {exc.strerror}") from None

    def get_range(self, key: str, offset: int, length: int) -> bytes | None:
        """`length` bytes from `offset`, None for a missing key like get_bytes: one WARC
        record out of a large file without reading the rest. Fewer bytes (possibly none)
        when the range runs past the end."""
        if offset < 0 or length < 0:
            raise ValueError(f"invalid byte range: offset {offset}, length {length}")
        try:
            with open(self._path(key), "rb") as fh:
                fh.seek(offset)
                return fh.read(length)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {key} in store {self.root}: {exc.strerror}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> Iterator[str]:
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base.is_dir():
            return iter(())
        keys = []
        for dirpath, dirnames, filenames in os.walk(base):
            rel_dir = os.path.relpath(dirpath, self.root)
            if rel_dir == "_tmp" or rel_dir.startswith("_tmp" + os.sep):
                dirnames[:] = []
                continue
            for name in filenames:
                key = name if rel_dir == "." else f"{rel_dir.replace(os.sep, '/')}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))

    def copy(self, src: str, dst: str) -> None:
        self.put_file(dst, self._path(src))

    def delete(self, key: str) -> None:
        """Also removes the directories it empties, as S3 has none: a prefix every run
        writes to and cleans (`_staging/<run>/`) must not leave a directory per run that
        every later listing walks."""
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot delete {key} in store {self.root}: {exc.strerror}") from None
        for parent in path.parents:
            if parent == self.root:
                break
            try:
                parent.rmdir()
            except OSError:  # not empty (or already gone): the rest above stays too
                break

    def url_for(self, key: str) -> str:
        return str(self.root / key)

    def table_uri(self, name: str) -> str:
        """Where delta-rs finds the table `name` (a directory under the root)."""
        return str(self.root / name)

    def storage_options(self) -> dict[str, str]:
        return {}


def _write_error(root: Path, key: str, exc: OSError) -> StoreError:
    return StoreError(f"cannot write {key} to store {root}: {exc.strerror or exc}")


def _sync_file_system(path: Path) -> None:
    syncfs = getattr(_libc(), "syncfs", None)
    if syncfs is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
    finally:
        os.close(fd)


@functools.cache
def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse fsync on directories
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


class S3Store:
    """A bucket and prefix. Endpoint and credentials follow boto3's standard variables."""

    request_threads = 16  # each request waits on the network: many in flight at once

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        client: object | None = None,
        credentials: S3Credentials | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._credentials = credentials
        self._session = _session(credentials)
        self._client = client or _default_s3_client(credentials, self._session)

    def _key(self, key: str) -> str:
        return self.prefix + key

    def check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise StoreUnusable(
                    f"bucket {self.bucket!r} does not exist (create it first)"
                ) from None
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise StoreUnusable(
                    f"access to bucket {self.bucket!r} denied: check AWS_ACCESS_KEY_ID/"
                    "AWS_SECRET_ACCESS_KEY"
                ) from None
            raise StoreError(f"bucket {self.bucket!r}: {code or exc}") from None
        except BotoCoreError as exc:
            endpoint = self._client.meta.endpoint_url
            raise StoreError(f"object store unreachable at {endpoint}: {exc}") from None

    def put_bytes(
        self, key: str, data: bytes, *, if_absent: bool = False, durable: bool = True
    ) -> bool:
        """An acknowledged PUT is durable: `durable` has nothing to skip here."""
        from botocore.exceptions import ClientError

        kwargs = {"IfNoneMatch": "*"} if if_absent else {}
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **kwargs)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code", "")
            if if_absent and (status == 412 or code == "PreconditionFailed"):
                return False
            raise
        return True

    def put_file(self, key: str, path: Path) -> None:
        self._client.upload_file(str(path), self.bucket, self._key(key))

    def get_bytes(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            obj = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return obj["Body"].read()

    def get_range(self, key: str, offset: int, length: int) -> bytes | None:
        """One ranged GET (what Common Crawl style WARC indexes rely on); None for a missing
        key, fewer bytes (possibly none) when the range runs past the end, as LocalStore."""
        from botocore.exceptions import ClientError

        if offset < 0 or length < 0:
            raise ValueError(f"invalid byte range: offset {offset}, length {length}")
        if length == 0:  # "bytes=N-(N-1)" is no range at all: servers send the whole object
            return b"" if self.exists(key) else None
        try:
            obj = self._client.get_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Range=f"bytes={offset}-{offset + length - 1}",
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                return None
            if code in ("InvalidRange", "416"):  # starts at or past the end of the object
                return b""
            raise
        return obj["Body"].read()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise
        return True

    def list(self, prefix: str) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        keys = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            keys.extend(obj["Key"][len(self.prefix) :] for obj in page.get("Contents", ()))
        return iter(sorted(keys))

    def sync(self) -> None:
        """Every acknowledged PUT is already durable."""

    def copy(self, src: str, dst: str) -> None:
        self._client.copy(
            {"Bucket": self.bucket, "Key": self._key(src)}, self.bucket, self._key(dst)
        )

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def url_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def table_uri(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._key(name)}"

    def storage_options(self) -> dict[str, str]:
        """The same endpoint and credentials as boto3, spelled for delta-rs."""
        meta = self._client.meta  # type: ignore[attr-defined]
        options = {
            "AWS_ENDPOINT_URL": meta.endpoint_url,
            "AWS_REGION": meta.region_name or "us-east-1",
        }
        resolved = self._session.get_credentials()  # the same chain boto3 uses
        if resolved is not None:
            frozen = resolved.get_frozen_credentials()
            options["AWS_ACCESS_KEY_ID"] = frozen.access_key
            options["AWS_SECRET_ACCESS_KEY"] = frozen.secret_key
            if frozen.token:
                options["AWS_SESSION_TOKEN"] = frozen.token
        if meta.endpoint_url.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
        return options


@dataclass(frozen=True)
class S3Credentials:
    """Explicit S3 settings (e.g. from an Airflow Connection) instead of AWS_* variables."""

    access_key: str | None = None
    secret_key: str | None = None
    endpoint_url: str | None = None
    region: str | None = None

    def __repr__(self) -> str:  # never print a secret
        return f"S3Credentials(endpoint_url={self.endpoint_url!r}, region={self.region!r})"


def _session(credentials: S3Credentials | None) -> Any:
    import boto3

    creds = credentials or S3Credentials()
    return boto3.session.Session(
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        region_name=creds.region,
    )


def _default_s3_client(credentials: S3Credentials | None = None, session: Any = None) -> object:
    from botocore.config import Config

    creds = credentials or S3Credentials()
    config = Config(
        connect_timeout=10,
        read_timeout=60,
        retries={"max_attempts": 5, "mode": "standard"},
        s3={"addressing_style": "path"},
    )
    session = session or _session(credentials)
    return session.client("s3", config=config, endpoint_url=creds.endpoint_url)


def open_store(uri: str, s3: S3Credentials | None = None) -> Store:
    """`s3://bucket/prefix`, `file:///path` or a plain path."""
    if not uri or not uri.strip():
        raise StoreUnusable("store URI is empty")
    parts = urlsplit(uri)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise StoreUnusable(f"store URI {uri!r} names no bucket (s3://bucket/prefix)")
        return S3Store(parts.netloc, parts.path, credentials=s3)
    if parts.scheme == "file":
        return LocalStore(parts.path)
    if parts.scheme and len(parts.scheme) > 1:
        raise StoreUnusable(f"unsupported store URI scheme {parts.scheme!r}: use s3:// or a path")
    return LocalStore(uri)
