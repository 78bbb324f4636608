"""The `ingest` entry point. User errors end with one line on stderr and a non-zero exit."""

from __future__ import annotations

import gc
import logging
import signal
import sys
from collections.abc import Sequence

from ingest.cli.exits import (
    EXIT_STORE_BUSY,
    EXIT_TERMINATED,
    EXIT_USER_ERROR,
    one_line,
)
from ingest.cli.parser import build_parser
from ingest.config import ConfigError
from ingest.extractor_pool import stop_forkserver
from ingest.store import StoreError

log = logging.getLogger("ingest")


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so every `finally` (lease, temp files) runs."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def user_error(exc: BaseException) -> tuple[str, int] | None:
    """The one place an exception becomes the line a user reads: (line, exit code), or
    None for a bug, which keeps its traceback."""
    from ingest.lease import StoreBusy
    from ingest.metrics import TextfileError
    from ingest.state import StateFileError

    if isinstance(exc, StoreBusy):
        return str(exc), EXIT_STORE_BUSY
    if isinstance(exc, ConfigError | StoreError | StateFileError | TextfileError):
        return str(exc), EXIT_USER_ERROR
    if isinstance(exc, OSError) and exc.errno is not None:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}", EXIT_USER_ERROR
    if isinstance(exc, ValueError):  # e.g. a run id that cannot name objects
        return str(exc), EXIT_USER_ERROR
    if type(exc).__module__.startswith(("botocore", "boto3", "s3transfer")):
        log.debug("object store failure", exc_info=True)
        return (
            f"object store failed mid-run: {exc}; nothing of this run was committed unless "
            "its commit finished: re-run to continue",
            EXIT_USER_ERROR,
        )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "trafilatura", "htmldate"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        stop_forkserver()
        print("ingest: interrupted; the next run finishes or discards this one", file=sys.stderr)
        return 130
    except Terminated:
        stop_forkserver()
        print("ingest: terminated; the next run finishes or discards this one", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as exc:
        known = user_error(exc)
        if known is None:
            raise
        line, code = known
        print(f"ingest: error: {one_line(line)}", file=sys.stderr)
        return code
    finally:
        signal.signal(signal.SIGTERM, previous)


def entry() -> None:
    """The `ingest` program: `main`, then the process ends. Everything it made is frozen
    out of the interpreter's last garbage collection, which would walk the whole heap a run
    leaves (0.1 s of every run's exit) only to free memory the exit frees anyway; files and
    connections are closed by the code that opened them, not by that collection."""
    code = main()
    gc.freeze()
    sys.exit(code)
