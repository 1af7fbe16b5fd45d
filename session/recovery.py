"""Finishing the record of sessions whose process is gone: at the start of every entry point.

A running session is owned by the process that runs it, and the proof is its journal's lease
(:mod:`session.journal`): an OS lock the process holds from before the session reaches the store
until after it is sealed, and that the kernel drops when the process ends, however it ends. So:

1. Every journal in this workstation's journal directory whose lease can be taken belongs to a
   dead process. It is ingested whole (the store may have missed up to the database's whole
   absence), then the session is closed: with its own ``finished`` record if it got that far,
   otherwise as interrupted; then sealed, and the journal removed.
2. A session of this workstation's identity still open in the store but with no journal on disk
   has no owner either (a journal exists for as long as its session is unsealed): interrupted and
   sealed.
3. Sessions written before sessions had owners (no identity) are closed by the workstation label,
   as before; no process of this software writes such rows.

A session closed here whose record holds a lock-severity trip locks its table, unless a lock of that
session exists already (even acknowledged): the process may have died between recording the trip
and writing the lock, and a table must never come out of a crash less locked than it went in.

Nothing else is touched: a session whose journal a live process holds is running, on this computer
or (being another identity's) on another. A database lock would not do as the proof: it is lost
with the database connection, exactly when the database is away, and the session's last records
would sit in a journal that only this computer can read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import structlog

from devices.records import EventKind, Finished, Sample
from session.identity import WorkstationIdentity
from session.journal import (
    ClaimedJournal,
    JournalError,
    JournalReader,
    claim,
    journals,
    remove_abandoned_drafts,
)
from session.lockouts import LOCK_SEVERITY, Lockouts, TableRef
from session.models import TreatmentSession
from session.recorder import write_batch
from session.seal import seal
from session.store import INTERRUPTED_REASON, Store, StoreError

log = structlog.get_logger(__name__)

ASIDE = ".unreadable"  # suffix of a journal kept for a person to look at


@dataclass
class RecoveryReport:
    """What one recovery pass did."""

    ingested: list[str] = field(default_factory=list)  # sessions completed from a journal
    interrupted: list[str] = field(default_factory=list)  # sessions closed as interrupted
    relocked: list[str] = field(default_factory=list)  # sessions whose lost lock was written
    live: list[str] = field(default_factory=list)  # journals held by a live process: untouched
    set_aside: list[str] = field(default_factory=list)  # journals that could not be ingested

    @property
    def closed(self) -> list[str]:
        return self.ingested + self.interrupted


def recover(store: Store, identity: WorkstationIdentity) -> RecoveryReport:
    """Close the record of every session of this workstation whose owner is provably gone."""
    report = RecoveryReport()
    remove_abandoned_drafts(identity.journal_dir)
    for path in journals(identity.journal_dir):
        claimed = claim(path)
        if claimed is None:
            if path.exists():
                report.live.append(path.name.removesuffix(".journal"))
            continue
        _ingest(store, claimed, report)
    for session_id in store.unfinished(identity.id):
        journal = identity.journal_dir / f"{session_id}.journal"
        if journal.exists() or journal.with_name(journal.name + ASIDE).exists():
            continue  # its owner is alive, or its journal was set aside: a person decides
        _interrupt(store, session_id, report)
    for session_id in store.unfinished_unowned(identity.label):
        _interrupt(store, session_id, report)
    for session_id in report.closed:
        _relock(store, session_id, report)
    return report


def recover_journal(store: Store, path: Path, reason: str = INTERRUPTED_REASON) -> RecoveryReport:
    """Close the record of one session whose process is gone (its treatment process died under
    a live workstation): its journal ingested whole, then its own end or ``reason``, sealed.
    Nothing is done while another process holds the journal, or once it is gone (sealed)."""
    report = RecoveryReport()
    claimed = claim(path)
    if claimed is not None:
        _ingest(store, claimed, report, reason)
    for session_id in report.closed:
        _relock(store, session_id, report)
    return report


def _ingest(
    store: Store, claimed: ClaimedJournal, report: RecoveryReport, reason: str = INTERRUPTED_REASON
) -> None:
    try:
        reader = JournalReader(claimed.path)
    except JournalError as exc:
        _set_aside(claimed, report, str(exc))
        return
    try:
        run_id = reader.run_id
        existing = _existing(store, run_id)
        if existing is not None and existing.sealed_at is not None:
            _check_sealed_covers(store, reader, claimed, report)
            return
        finished: Finished | None = None
        for batch in reader:
            write_batch(store, reader.context, batch)
            if isinstance(batch[-1], Finished):
                finished = batch[-1]
        if _existing(store, run_id) is None:  # nothing but the header: it never started
            claimed.remove()
            return
        if finished is None:
            store.interrupt(run_id, reason)
            report.interrupted.append(run_id)
        else:
            report.ingested.append(run_id)
        digest = seal(store, run_id)
        log.warning(
            "recovered a session from its journal",
            session=run_id,
            outcome=store.get_session(run_id).outcome,
            seal=digest[:16],
        )
        claimed.remove()
    except (JournalError, StoreError) as exc:
        _set_aside(claimed, report, str(exc))
    finally:
        reader.close()


def _check_sealed_covers(
    store: Store, reader: JournalReader, claimed: ClaimedJournal, report: RecoveryReport
) -> None:
    """A journal of a session already sealed: the process died between sealing and removing it
    (remove it), unless it holds samples the store lacks (keep it for a person: a seal is never
    reopened)."""
    journalled = sum(1 for batch in reader for item in batch if isinstance(item, Sample))
    stored = store.sample_count(reader.run_id)
    if journalled > stored:
        _set_aside(
            claimed,
            report,
            f"session {reader.run_id} is sealed with {stored} samples but its journal holds "
            f"{journalled}",
        )
    else:
        claimed.remove()


def _interrupt(store: Store, session_id: str, report: RecoveryReport) -> None:
    row = store.interrupt(session_id)
    if row is None:
        return  # its owner finished it meanwhile
    seal(store, session_id)
    report.interrupted.append(session_id)
    log.warning(
        "session interrupted",
        session=session_id,
        last_sample_t=row.last_sample_t,
        samples=row.sample_count,
    )


def _relock(store: Store, session_id: str, report: RecoveryReport) -> None:
    """Lock the table of a session whose lock-severity trip is recorded but whose lock is not."""
    trip = next(
        (
            event
            for event in store.iter_events(session_id)
            if event.kind == EventKind.TRIP.value
            and str(event.data.get("severity", "")) == LOCK_SEVERITY
        ),
        None,
    )
    if trip is None:
        return
    lockouts = Lockouts(store.engine)
    if lockouts.of_session(session_id):
        return  # written before the process died (and perhaps acknowledged since)
    row = store.get_session(session_id)
    extra = row.settings.get("extra", {}) if isinstance(row.settings, dict) else {}
    table = TableRef(
        row.workstation,
        str(extra.get("table_name") or row.table_label),
        str(extra.get("table_url") or ""),
        row.device_serial,
    )
    lockouts.lock(
        table,
        fault=str(trip.data.get("fault") or trip.kind),
        reason=trip.reason,
        session_id=session_id,
        data={"t": trip.t, "kind": trip.kind, "severity": LOCK_SEVERITY, "by": "recovery"},
    )
    report.relocked.append(session_id)
    log.warning(
        "table locked by recovery: the trip was recorded, its lock was not", session=session_id
    )


def _set_aside(claimed: ClaimedJournal, report: RecoveryReport, why: str) -> None:
    aside = claimed.set_aside(ASIDE)
    report.set_aside.append(aside.name)
    log.error(
        "journal kept aside; nothing was lost, a person must look at it", path=str(aside), why=why
    )


def _existing(store: Store, run_id: str) -> TreatmentSession | None:
    try:
        return store.get_session(run_id)
    except StoreError:
        return None
