"""Sealing a finished session so that any later change to what it recorded shows.

The seal is a SHA-256 digest over a canonical serialization of the settings snapshot, every sample
and every event (in sequence order, streamed page by page) and the outcome. Part digests are kept
beside it, so :func:`verify` can say which part changed. A digest shows tampering by anyone who
cannot also rewrite the seal; it is not a signature.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from session.store import Store

SEAL_VERSION = 1
PARTS = ("settings", "samples", "events", "outcome")


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` found. ``differences`` names each part that no longer matches."""

    session_id: str
    ok: bool
    expected: str | None
    actual: str
    differences: list[str] = field(default_factory=list)


def _canonical(value: Any) -> bytes:
    # json renders floats with repr(), which round-trips exactly.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compute_parts(store: Store, session_id: str) -> dict[str, Any]:
    """Part digests and counts of a session as stored now."""
    row = store.get_session(session_id)
    settings = hashlib.sha256(_canonical(row.settings)).hexdigest()
    samples = hashlib.sha256()
    sample_count = 0
    for s in store.iter_samples(session_id):
        samples.update(_canonical([s.seq, s.t, s.target_n, s.measured_n, s.phase, s.cycle]))
        samples.update(b"\n")
        sample_count += 1
    events = hashlib.sha256()
    event_count = 0
    for e in store.iter_events(session_id):
        events.update(_canonical([e.seq, e.t, e.kind, e.reason, e.data]))
        events.update(b"\n")
        event_count += 1
    outcome = hashlib.sha256(_canonical([row.id, row.outcome, row.outcome_reason])).hexdigest()
    return {
        "version": SEAL_VERSION,
        "settings": settings,
        "samples": samples.hexdigest(),
        "sample_count": sample_count,
        "events": events.hexdigest(),
        "event_count": event_count,
        "outcome": outcome,
    }


def digest_of(parts: dict[str, Any]) -> str:
    """The seal over a set of part digests."""
    return "sha256:" + hashlib.sha256(_canonical(parts)).hexdigest()


def digest(store: Store, session_id: str) -> str:
    """The seal a session would get from what is stored now."""
    return digest_of(compute_parts(store, session_id))


def seal(store: Store, session_id: str) -> str:
    """Seal a finished session (once); return the digest."""
    parts = compute_parts(store, session_id)
    value = digest_of(parts)
    store.record_seal(session_id, value, parts)
    return value


def verify(store: Store, session_id: str) -> VerifyReport:
    """Recompute a session's seal and compare it with the stored one, naming what differs."""
    row = store.get_session(session_id)
    parts = compute_parts(store, session_id)
    actual = digest_of(parts)
    if row.seal_digest is None:
        return VerifyReport(session_id, False, None, actual, ["the session was never sealed"])
    differences: list[str] = []
    stored = row.seal_parts or {}
    if digest_of(stored) != row.seal_digest:
        differences.append("the stored seal does not match its own part digests")
    for name in PARTS:
        if stored.get(name) != parts[name]:
            differences.append(f"{name} changed since sealing")
    for name in ("sample_count", "event_count"):
        if stored.get(name) != parts[name]:
            differences.append(f"{name}: {stored.get(name)} at sealing, {parts[name]} now")
    ok = actual == row.seal_digest and not differences
    return VerifyReport(session_id, ok, row.seal_digest, actual, differences)
