"""The `ingest` command's exit statuses (README, "The ingest command") and its one-line
error messages."""

EXIT_USER_ERROR = 1
EXIT_FEED_PROBLEMS = 3  # the run itself worked; feeds failed or went stale
EXIT_STORE_BUSY = 75  # EX_TEMPFAIL: another run holds the store; try again later
EXIT_TERMINATED = 143
MAX_ERROR_CHARS = 500  # an error line is cut here


def one_line(text: str) -> str:
    """A message as one line of at most MAX_ERROR_CHARS characters."""
    line = " ".join(text.split())
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"
