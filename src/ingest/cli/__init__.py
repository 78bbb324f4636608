"""The `ingest` command: parser (one sub-parser per command), commands, and the entry
point (`main`) that turns every user error into one line and an exit status."""

from ingest.cli.main import entry, main, user_error

__all__ = ["entry", "main", "user_error"]
