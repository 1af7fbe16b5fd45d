"""Sealing a finished session so that any later change to what it recorded shows.

The seal is a SHA-256 digest over a canonical serialization of the settings snapshot, the recorded
facts of the session row (who, which table, when), every sample and every event (in sequence order,
streamed once), the outcome, and the documentation as it stood at sealing with the amendments made
until then. Part digests are kept beside it, so :func:`verify` can say which part changed. A digest
shows tampering by anyone who cannot also rewrite the seal; it is not a signature.

Documentation is completed by amendment after sealing, so its sealed values are kept in plain
beside the digests: :func:`verify` replays every later amendment on them and reports a field that
no amendment explains, or an amendment that does not follow from the value before it. Who made a
later amendment and why are not covered: the amendment log is append-only by rule, not by digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from session.facts import FactsBuilder, SessionFactsRow, record_verification
from session.facts import record as record_facts
from session.models import Amendment, TreatmentSession
from session.store import AMENDABLE_FIELDS, Store

SEAL_VERSION = 2
PARTS_BY_VERSION: dict[int, tuple[str, ...]] = {
    1: ("settings", "samples", "events", "outcome"),
    2: ("settings", "record", "samples", "events", "outcome", "amendments"),
}
PARTS = PARTS_BY_VERSION[SEAL_VERSION]
RECORDED_FIELDS = (
    "patient_id",
    "treating_clinician_id",
    "workstation",
    "table_label",
    "device_manufacturer",
    "device_model",
    "device_serial",
    "device_firmware",
    "device_rated_max_force_n",
    "start_t",
    "started_at",
    "ended_at",
)
"""Session-row facts the record fixes for good (unlike the documentation fields, never amended)."""
DOCUMENTATION_FIELDS = (*AMENDABLE_FIELDS, "signed_at")


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` found. ``differences`` names each part that no longer matches."""

    session_id: str
    ok: bool
    expected: str | None
    actual: str
    differences: list[str] = field(default_factory=list)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _canonical(value: Any) -> bytes:
    # json renders floats with repr(), which round-trips exactly.
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain
    ).encode()


def _documentation(row: TreatmentSession) -> dict[str, Any]:
    return {name: _plain(getattr(row, name)) for name in DOCUMENTATION_FIELDS}


def _amendment(a: Amendment) -> list[Any]:
    return [a.id, a.author, _plain(a.at), a.field_name, a.old_value, a.new_value, a.why]


_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _sample_lines(page: Sequence[Sequence[Any]], phases: set[str]) -> str:
    """The canonical lines of a page of sample rows: byte for byte what :func:`_canonical` gives
    for each ``[seq, t, target_n, measured_n, phase, cycle]``, plus a newline after each.

    The whole page goes through one call of the same JSON encoder, which writes the rows
    joined by ``,``; rows are then split at ``],[`` (no number contains a bracket, and a phase
    that does sends the page through the encoder row by row instead)."""
    if not page:
        return ""
    new = {row[4] for row in page} - phases
    if any("]" in str(phase) for phase in new):
        return "".join(_encode(list(row)) + "\n" for row in page)
    phases |= new  # phases known to be safe to split around
    return _encode(page)[1:-1].replace("],[", "]\n[") + "\n"


def compute_parts(
    store: Store, session_id: str, version: int = SEAL_VERSION, amendments_until: int | None = None
) -> dict[str, Any]:
    """Part digests and counts of a session as stored now (one pass over its samples), as seal
    ``version`` lays them out.

    ``amendments_until`` (version 2) limits the amendments part to those with an id up to it, the
    ones a seal covers; by default, all of them (as at sealing).
    """
    return _compute(store, session_id, None, version, amendments_until)


def compute_with_facts(store: Store, session_id: str) -> tuple[dict[str, Any], SessionFactsRow]:
    """Part digests and the session's facts, from the same single pass over its samples."""
    row = store.get_session(session_id)
    end_t = row.last_sample_t if row.last_sample_t is not None else row.start_t
    builder = FactsBuilder(session_id, row.settings or {}, row.start_t, end_t)
    parts = _compute(store, session_id, builder)
    return parts, builder.build(None, False)


def _compute(
    store: Store,
    session_id: str,
    builder: FactsBuilder | None,
    version: int = SEAL_VERSION,
    amendments_until: int | None = None,
) -> dict[str, Any]:
    row = store.get_session(session_id)
    settings = hashlib.sha256(_canonical(row.settings)).hexdigest()
    samples = hashlib.sha256()
    sample_count = 0
    phases: set[str] = set()
    for page in store.iter_sample_pages(session_id):
        samples.update(_sample_lines(page, phases).encode())
        sample_count += len(page)
        if builder is not None:
            add = builder.add_sample
            for _, t, target_n, measured_n, phase, _ in page:
                add(t, target_n, measured_n, phase)
    events = hashlib.sha256()
    event_count = 0
    for e in store.iter_events(session_id):
        events.update(_canonical([e.seq, e.t, e.kind, e.reason, e.data]))
        events.update(b"\n")
        event_count += 1
        if builder is not None:
            builder.add_event(e.t, e.kind, e.reason)
    outcome = hashlib.sha256(_canonical([row.id, row.outcome, row.outcome_reason])).hexdigest()
    parts: dict[str, Any] = {
        "version": version,
        "settings": settings,
        "samples": samples.hexdigest(),
        "sample_count": sample_count,
        "events": events.hexdigest(),
        "event_count": event_count,
        "outcome": outcome,
    }
    if version >= 2:
        recorded = {name: _plain(getattr(row, name)) for name in RECORDED_FIELDS}
        parts["record"] = hashlib.sha256(_canonical(recorded)).hexdigest()
        covered = [
            a
            for a in store.amendments(session_id)
            if amendments_until is None or (a.id is not None and a.id <= amendments_until)
        ]
        parts["amendments"] = hashlib.sha256(
            _canonical([_amendment(a) for a in covered])
        ).hexdigest()
        parts["amendment_count"] = len(covered)
        parts["last_amendment_id"] = max((a.id or 0 for a in covered), default=0)
        parts["documentation"] = _documentation(row)
    return parts


def digest_of(parts: dict[str, Any]) -> str:
    """The seal over a set of part digests."""
    return "sha256:" + hashlib.sha256(_canonical(parts)).hexdigest()


def digest(store: Store, session_id: str) -> str:
    """The seal a session would get from what is stored now."""
    return digest_of(compute_parts(store, session_id))


def seal(store: Store, session_id: str) -> str:
    """Seal a finished session (once) and store its facts, from one pass over its samples;
    return the digest."""
    parts, facts = compute_with_facts(store, session_id)
    value = digest_of(parts)
    store.record_seal(session_id, value, parts)
    facts.seal_digest, facts.seal_verified = value, True
    record_facts(store, facts)
    return value


def verify(store: Store, session_id: str, *, keep: bool = False) -> VerifyReport:
    """Recompute a session's seal and compare it with the stored one, naming what differs.
    With ``keep``, what it finds is also kept with the session's facts, where claims read it
    (without, nothing is written: a read-only copy can be verified)."""
    row = store.get_session(session_id)
    stored = row.seal_parts or {}
    version = stored.get("version")
    if version not in PARTS_BY_VERSION:  # never sealed, or a layout this code does not know
        version = SEAL_VERSION
    parts = compute_parts(store, session_id, version, stored.get("last_amendment_id"))
    if version >= 2 and "documentation" in stored:
        parts["documentation"] = stored["documentation"]  # as sealed; checked by replay, below
    actual = digest_of(parts)
    if row.seal_digest is None:
        return VerifyReport(session_id, False, None, actual, ["the session was never sealed"])
    differences: list[str] = []
    if digest_of(stored) != row.seal_digest:
        differences.append("the stored seal does not match its own part digests")
    for name in PARTS_BY_VERSION[version]:
        if stored.get(name) != parts[name]:
            differences.append(f"{name} changed since sealing")
    counts = ("sample_count", "event_count") + (("amendment_count",) if version >= 2 else ())
    for name in counts:
        if stored.get(name) != parts[name]:
            differences.append(f"{name}: {stored.get(name)} at sealing, {parts[name]} now")
    if version >= 2:
        differences += _replay_amendments(store, row, stored)
    ok = actual == row.seal_digest and not differences
    if keep:
        record_verification(store, session_id, row.seal_digest, ok)
    return VerifyReport(session_id, ok, row.seal_digest, actual, differences)


def _replay_amendments(store: Store, row: TreatmentSession, stored: dict[str, Any]) -> list[str]:
    """Apply the amendments made after sealing to the sealed documentation; every field must end
    where the session row has it, and every amendment must start where the one before left off."""
    values = dict(stored.get("documentation") or {})
    after = int(stored.get("last_amendment_id") or 0)
    differences = []
    for a in store.amendments(row.id):
        if a.id is None or a.id <= after:
            continue
        if a.field_name not in values:
            differences.append(
                f"amendment {a.id} changes {a.field_name!r}, not a documentation field"
            )
            continue
        if a.old_value != values[a.field_name]:
            differences.append(
                f"amendment {a.id} to {a.field_name} does not follow from the value before it"
            )
        values[a.field_name] = a.new_value
        if a.field_name == "signed_by_id":  # dated as Store.amend dates it: never before the end
            signed = max(a.at, row.ended_at or a.at)  # a sealed session has always ended
            values["signed_at"] = _plain(signed) if a.new_value is not None else None
    now = _documentation(row)
    for name in DOCUMENTATION_FIELDS:
        if name in values and now[name] != values[name]:
            differences.append(f"{name} changed without an amendment since sealing")
    return differences
