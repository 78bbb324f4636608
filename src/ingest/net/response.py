"""What a fetch gives back."""

from __future__ import annotations

from dataclasses import dataclass, field

HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass
class Response:
    url: str
    final_url: str
    status: int
    headers: dict[str, str]
    body: bytes
    redirects: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    ip_address: str | None = None  # of the server that gave the final answer
    # the headers this client sent with the final request (what a WARC request record holds)
    request_headers: dict[str, str] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()
