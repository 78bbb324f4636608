"""The network: one guarded HTTP client (client), the address guard (guard), one deadline
per fetch (deadline), per-host politeness (hosts), robots.txt (robots), charset decoding
(decode) and URLs as requested (urls). Nothing here imports the run, the CLI or Airflow."""

from ingest.net.client import HttpClient
from ingest.net.decode import decode_html
from ingest.net.errors import BlockedAddress, FetchError
from ingest.net.guard import address_refusal, effective_address
from ingest.net.response import HTML_TYPES, Response
from ingest.net.robots import RobotsCache
from ingest.net.urls import request_url

__all__ = [
    "HTML_TYPES",
    "BlockedAddress",
    "FetchError",
    "HttpClient",
    "Response",
    "RobotsCache",
    "address_refusal",
    "decode_html",
    "effective_address",
    "request_url",
]
