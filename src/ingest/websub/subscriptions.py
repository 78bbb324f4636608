"""WebSub subscriptions, kept in the store: what was asked of which hub, and what the hub
confirmed.

Two writers, two objects per subscription, so neither overwrites the other:
`_websub/subscriptions/<id>.json` is written by the subscriber side (`sync`, run after
each commit), `_websub/verified/<id>.json` by the receiver when the hub verifies intent.
The id is random and is the last segment of the callback URL; the secret (`hub.secret`)
is random per subscription, lives only in its object, and never appears in logs or
reprs. Everything here costs requests per subscribed source, never per article.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Literal, Self

from ingest.config import Feed
from ingest.net import FetchError, HttpClient
from ingest.state import FeedState
from ingest.store import Store

log = logging.getLogger(__name__)

PREFIX = "_websub/"
SUBSCRIPTIONS = f"{PREFIX}subscriptions/"
VERIFIED = f"{PREFIX}verified/"
CALLBACK_PATH = "/websub/"  # the receiver's callback URLs: <public base>/websub/<id>

DEFAULT_LEASE_SECONDS = 10 * 24 * 3600  # asked of hubs; a hub may grant less or more
RENEW_BEFORE = 0.2  # renew when less than this share of the granted lease is left...
RENEW_BEFORE_MIN = timedelta(hours=2)  # ...or less than this, whichever is more
RETRY_UNVERIFIED = timedelta(hours=1)  # ask again when a request got no verification
RETRY_DENIED = timedelta(days=1)  # a hub that denied is asked again this much later
FORGET_UNSUBSCRIBED = timedelta(days=1)  # an unconfirmed unsubscribe is dropped after this
MAX_HUB_ANSWER = 65_536

Mode = Literal["subscribe", "unsubscribe"]


class _Record:
    """A dataclass kept as one JSON object; unknown keys (a newer version's) are ignored."""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()  # type: ignore[call-overload]

    @classmethod
    def from_json(cls, raw: bytes) -> Self:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def read(cls, store: Store, key: str) -> Self | None:
        """The record at `key`; None when there is none or it is unreadable (logged)."""
        raw = store.get_bytes(key)
        if raw is None:
            return None
        try:
            return cls.from_json(raw)
        except (ValueError, TypeError):
            log.warning("%s is unreadable: ignored", key)
            return None


@dataclass
class Subscription(_Record):
    """What the subscriber asked: written by `sync` only."""

    id: str
    source: str
    topic: str
    hub: str
    mode: Mode
    requested_at: str
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    secret: str = field(default="", repr=False)
    last_error: str | None = None


@dataclass
class Verification(_Record):
    """What the hub confirmed (or denied): written by the receiver only."""

    mode: Literal["subscribe", "unsubscribe", "denied"]
    topic: str
    at: str
    lease_seconds: int | None = None
    reason: str | None = None

    @property
    def expires_at(self) -> datetime | None:
        if self.mode != "subscribe" or self.lease_seconds is None:
            return None
        return datetime.fromisoformat(self.at) + timedelta(seconds=self.lease_seconds)


@dataclass
class Status:
    """A subscription with what the hub said: for `ingest status` and for `sync`."""

    subscription: Subscription
    verification: Verification | None

    @property
    def state(self) -> str:
        """pending | active | expired | denied | unsubscribing | unsubscribed, now."""
        return self.state_at(datetime.now(UTC))

    def state_at(self, now: datetime) -> str:
        """The state at `now`: a lease runs out by the clock a sync is given."""
        sub, ver = self.subscription, self.verification
        confirmed = ver is not None and ver.at >= sub.requested_at
        if sub.mode == "unsubscribe":
            return "unsubscribed" if confirmed and ver.mode == "unsubscribe" else "unsubscribing"
        if ver is not None and ver.mode == "denied" and confirmed:
            return "denied"
        if ver is None or ver.mode != "subscribe":
            return "pending"
        expires = ver.expires_at
        if expires is not None and expires <= now:
            return "expired"
        return "active"

    def accepts_content(self, now: datetime) -> bool:
        """Content distribution is accepted for a subscription the hub verified and whose
        lease has not run out (a renewal in flight keeps the last verified lease)."""
        ver = self.verification
        if self.subscription.mode != "subscribe" or ver is None or ver.mode != "subscribe":
            return False
        expires = ver.expires_at
        return expires is None or now < expires


class SubscriptionStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, sid: str) -> Subscription | None:
        if not is_subscription_id(sid):
            return None
        return Subscription.read(self.store, f"{SUBSCRIPTIONS}{sid}.json")

    def verification(self, sid: str) -> Verification | None:
        return Verification.read(self.store, f"{VERIFIED}{sid}.json")

    def status(self, sid: str) -> Status | None:
        sub = self.get(sid)
        return Status(sub, self.verification(sid)) if sub is not None else None

    def all(self) -> list[Status]:
        out = []
        for key in self.store.list(SUBSCRIPTIONS):
            sid = key[len(SUBSCRIPTIONS) :].removesuffix(".json")
            status = self.status(sid)
            if status is not None:
                out.append(status)
        return sorted(out, key=lambda s: (s.subscription.source, s.subscription.id))

    def save(self, sub: Subscription) -> None:
        self.store.put_bytes(f"{SUBSCRIPTIONS}{sub.id}.json", sub.to_json())

    def record(self, sid: str, verification: Verification) -> None:
        self.store.put_bytes(f"{VERIFIED}{sid}.json", verification.to_json())

    def forget(self, sid: str) -> None:
        self.store.delete(f"{VERIFIED}{sid}.json")
        self.store.delete(f"{SUBSCRIPTIONS}{sid}.json")


def is_subscription_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


def new_subscription(source: str, topic: str, hub: str, now: datetime) -> Subscription:
    return Subscription(
        id=secrets.token_hex(16),
        source=source,
        topic=topic,
        hub=hub,
        mode="subscribe",
        requested_at=now.isoformat(),
        secret=secrets.token_urlsafe(32),
    )


def wanted(feeds: Iterable[Feed], states: dict[str, FeedState]) -> dict[str, tuple[str, str]]:
    """source -> (hub, topic) for every enabled source with a hub: the feeds file's `hub`,
    else the one its last poll announced; the topic is what the source called itself
    (rel=self), else its URL."""
    out = {}
    for feed in feeds:
        if not feed.enabled:
            continue
        state = states.get(feed.name)
        hub = feed.hub or (state.websub_hub if state is not None else None)
        if hub:
            topic = (state.websub_topic if state is not None else None) or feed.url
            out[feed.name] = (hub, topic)
    return out


@dataclass
class SyncReport:
    subscribed: list[str] = field(default_factory=list)  # requests sent, by source
    renewed: list[str] = field(default_factory=list)
    unsubscribed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # source -> why the hub refused
    forgotten: int = 0


def callback_url(public_base: str, sid: str) -> str:
    return f"{public_base.rstrip('/')}{CALLBACK_PATH}{sid}"


def _due_for_renewal(status: Status, now: datetime) -> bool:
    ver = status.verification
    expires = ver.expires_at if ver is not None else None
    if expires is None or ver is None or ver.lease_seconds is None:
        return False
    margin = max(RENEW_BEFORE_MIN, timedelta(seconds=ver.lease_seconds * RENEW_BEFORE))
    return expires - now <= margin


def sync(
    store: Store,
    feeds: list[Feed],
    states: dict[str, FeedState],
    client: HttpClient,
    public_base: str,
    now: datetime | None = None,
) -> SyncReport:
    """Bring the hubs in line with the feeds: subscribe sources that announce a hub,
    renew leases before they run out, ask again after silence or a denial, unsubscribe
    sources removed, disabled or moved to another hub or topic. A hub that fails is
    reported and asked again by the next sync; nothing here raises for one hub."""
    now = now or datetime.now(UTC)
    subs = SubscriptionStore(store)
    want = wanted(feeds, states)
    report = SyncReport()
    have: dict[str, Status] = {}
    for status in subs.all():
        sub = status.subscription
        live = sub.mode == "subscribe" and want.get(sub.source) == (sub.hub, sub.topic)
        if live and sub.source not in have:
            have[sub.source] = status
            continue
        _retire(subs, status, client, public_base, now, report)
    for source, (hub, topic) in sorted(want.items()):
        status = have.get(source)
        if status is None:
            sub = new_subscription(source, topic, hub, now)
            _request(subs, sub, client, public_base, report.subscribed, report)
            continue
        state, sub, ver = status.state_at(now), status.subscription, status.verification
        requested = datetime.fromisoformat(sub.requested_at)
        unanswered = ver is None or ver.at < sub.requested_at
        if unanswered and now - requested < RETRY_UNVERIFIED:
            continue  # asked recently: the hub verifies in its own time
        again = (
            state in ("pending", "expired")
            or (state == "denied" and now - requested >= RETRY_DENIED)
            or (state == "active" and _due_for_renewal(status, now))
        )
        if again:
            renewed = replace(sub, requested_at=now.isoformat(), last_error=None)
            _request(subs, renewed, client, public_base, report.renewed, report)
    return report


def _retire(
    subs: SubscriptionStore,
    status: Status,
    client: HttpClient,
    public_base: str,
    now: datetime,
    report: SyncReport,
) -> None:
    """A subscription no longer wanted: unsubscribe once, forget it when confirmed (or
    when the hub never confirms)."""
    sub = status.subscription
    if sub.mode == "unsubscribe":
        requested = datetime.fromisoformat(sub.requested_at)
        if status.state_at(now) == "unsubscribed" or now - requested >= FORGET_UNSUBSCRIBED:
            subs.forget(sub.id)
            report.forgotten += 1
        return
    if status.state_at(now) in ("pending", "denied", "expired"):
        subs.forget(sub.id)  # the hub holds nothing live for it
        report.forgotten += 1
        return
    leaving = replace(sub, mode="unsubscribe", requested_at=now.isoformat(), last_error=None)
    _request(subs, leaving, client, public_base, report.unsubscribed, report)


def _request(
    subs: SubscriptionStore,
    sub: Subscription,
    client: HttpClient,
    public_base: str,
    done: list[str],
    report: SyncReport,
) -> None:
    """Save the request first (the hub may verify before its answer reaches us), then
    send it. 202 Accepted and any 2xx are success; anything else is kept as last_error."""
    subs.save(sub)
    fields_: dict[str, str] = {
        "hub.callback": callback_url(public_base, sub.id),
        "hub.mode": sub.mode,
        "hub.topic": sub.topic,
    }
    if sub.mode == "subscribe":
        fields_["hub.lease_seconds"] = str(sub.lease_seconds)
        fields_["hub.secret"] = sub.secret
    try:
        status, _, body = client.post_form(sub.hub, fields_, MAX_HUB_ANSWER)
    except FetchError as exc:
        error: str | None = f"{exc.reason}: {exc.detail}"
    else:
        error = None if 200 <= status < 300 else f"hub answered {status}: {_clip(body)}"
    if error is None:
        done.append(sub.source)
        log.info("websub: %s %s at %s", sub.mode, sub.topic, sub.hub)
        return
    report.failed[sub.source] = error
    log.warning("websub: %s of %s at %s failed: %s", sub.mode, sub.topic, sub.hub, error)
    subs.save(replace(sub, last_error=error))


def _clip(body: bytes, limit: int = 200) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else text[:limit] + "…"
