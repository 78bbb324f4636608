"""What a fetch gives back."""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.net.decode import decode_html

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

    def text(self) -> str:
        """Decode with the charset from HTTP header, BOM or meta; detect when none is given."""
        return decode_html(self.body, self.headers.get("content-type", ""))
