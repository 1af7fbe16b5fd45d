"""One treatment, end to end: check the prescription, run it on a table, record every record, seal.

This is where a session's pieces meet: the control loop (devices) publishes; the recorder (here)
subscribes and writes off the loop; views subscribe too. Nothing here speaks a wire protocol: the
caller hands in a connected :class:`devices.contract.Table`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from devices.clock import Clock
from devices.contract import DeviceInfo, StopKind, Table
from devices.errors import TableError
from devices.limits import PatientFacts, SafetyLimits, Violation, validate
from devices.loop import StartRefused
from devices.opening import url_of
from devices.profiles import ForceProfile
from devices.records import Finished, Outcome
from devices.stream import Stream, Subscriber
from devices.units import ForceUnit
from session.lockouts import Lockouts, LockoutWatch, TableRef
from session.models import Patient
from session.patient_facts import facts_of
from session.recorder import Recorder
from session.recovery import recover_journal
from session.store import SessionContext, SessionQuery, Store, StoreError
from session.treatment_proxy import DEFAULT_MEMORY_LIMIT, ProcessEnd, TreatmentProcess

log = structlog.get_logger(__name__)


def prior_sessions(store: Store, patient: Patient) -> dict[str, int]:
    """How many sessions that applied force the patient has had, by region (for the
    first-session caps)."""
    counts: dict[str, int] = {}
    for row in store.find_sessions(SessionQuery(patient_id=patient.id, unfinished=False)):
        if row.sample_count > 0:
            for region in row.regions:
                counts[region] = counts.get(region, 0) + 1
    return counts


def patient_facts(patient: Patient, prior: Mapping[str, int] | None = None) -> PatientFacts:
    """The facts the safety limits need, from the stored patient and, when known, the sessions
    already given (:func:`prior_sessions`; without them the first-session cap is not checked)."""
    return PatientFacts(
        body_weight_kg=patient.body_weight_kg,
        sex=patient.sex,
        contraindications=frozenset([*patient.contraindications, *patient.precautions]),
        prior_sessions=prior,
    )


async def preflight(
    table: Table,
    profile: ForceProfile,
    patient: Patient,
    limits: SafetyLimits,
    operator_confirmed: bool = False,
    prior: Mapping[str, int] | None = None,
) -> tuple[DeviceInfo, list[Violation]]:
    """Every violation the prescription would meet on this table for this patient (nothing moves)."""
    device = await table.identify()
    facts = patient_facts(patient, prior)
    return device, validate(profile, facts, limits, device, operator_confirmed)


@dataclass
class TreatmentResult:
    session_id: str
    finished: Finished
    seal: str
    locked: bool = False  # a lock-severity trip locked the table; it needs acknowledging


@dataclass
class Treatment:
    """A session about to run: build it, subscribe views to ``stream``, then ``await run()``.

    The control loop runs in the workstation's treatment process (:mod:`session.control_host`),
    which opens the table again from its URL and owns the connection while the session runs; this
    process keeps the recorder, the lockout watch and the views, fed from ``stream``. ``loop``
    (a :class:`TreatmentProcess`) takes the operator's pause, resume, stop, release and settings
    to it. Records go to a journal in ``journal_dir`` first (the workstation identity's, so that
    recovery can find it), written by the treatment process, then to the store.
    Building it touches no database (it may be built while other tables are running on the same
    event loop): pass ``prior_sessions`` read beforehand, off the loop.
    """

    store: Store
    table: Table
    profile: ForceProfile
    patient: Patient
    context: SessionContext
    limits: SafetyLimits
    clock: Clock
    journal_dir: Path
    tick_hz: float | None = None
    operator_confirmed: bool = False
    flush_interval: float = 0.25
    table_label: str | None = None
    prior_sessions: Mapping[str, int] | None = None
    stream: Stream = field(default_factory=Stream)
    unit: ForceUnit = ForceUnit.LBF  # the clinic's display unit, for reasons people read
    table_name: str | None = None  # what the workstation calls the table (its lock key)
    table_url: str = ""
    wire_url: str | None = None  # the URL the treatment process opens (default: the table's own)
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT  # the treatment process's address space

    def __post_init__(self) -> None:
        self.loop = TreatmentProcess(
            self.wire_url or url_of(self.table),
            self.profile,
            patient_facts(self.patient, self.prior_sessions),
            self.limits,
            self.stream,
            time_scale=self.clock.scale,
            tick_hz=self.tick_hz,
            operator_confirmed=self.operator_confirmed,
            flush_interval=self.flush_interval,
            label=self.table_label or self.table.name,
            unit=self.unit,
            extra={
                "workstation": self.context.workstation,
                "regions": list(self.context.regions),
                "patient_record": {**facts_of(self.patient), "version": self.patient.version},
                # the lock key, so that recovery can lock the table if the lock write was lost
                "table_name": self.table_name or self.table_label or "table",
                "table_url": self.table_url,
            },
            memory_limit_bytes=self.memory_limit_bytes,
        )
        self.recorder = Recorder(
            self.store,
            self.context,
            self.loop.request_stop,
            journal_dir=self.journal_dir,
            flush_interval=self.flush_interval,
            journal_sink=self.loop.warn,
        )
        self.stream.subscribe(self.recorder)
        name = self.table_name or self.table_label or "table"
        ref = TableRef(self.context.workstation, name, self.table_url)
        self.lockouts = LockoutWatch(Lockouts(self.store.engine), ref)
        self.stream.subscribe(self.lockouts)

    @property
    def session_id(self) -> str:
        return self.loop.run_id

    def subscribe(self, subscriber: Subscriber) -> None:
        self.stream.subscribe(subscriber)

    async def run(self) -> TreatmentResult:
        """Run to the end. Raises ``session.lockouts.TableLocked`` if the table is locked, or
        ``devices.loop.StartRefused`` if nothing could start (no record is made then); otherwise
        the session is recorded and sealed whatever its outcome, and a lock-severity trip has
        locked the table before this returns.

        The journal is made before the table moves (a journal that cannot be made refuses the
        start); it holds the session's lease until the session is sealed, shared with the
        treatment process. If that process dies, the table's watchdog releases the table (and
        this process releases it too, over its own connection), and the session is recorded from
        its journal as interrupted."""
        watch = self.lockouts
        await asyncio.to_thread(watch.refuse_if_locked)
        journal = self.recorder.open_journal(self.session_id)
        await self.table.close()  # the treatment process owns the connection while it runs
        try:
            async with self.recorder:
                end = await self.loop.run(journal, self.recorder.journal_fd())
                if end.refused is not None:
                    raise end.refused
                if end.error is not None:
                    raise StartRefused([end.error])
                if end.clean:
                    assert end.finished is not None
                    await watch.wait_written()
                    seal = await self.recorder.wait_finished()
                    return TreatmentResult(self.session_id, end.finished, seal, watch.locked)
            return await self._after_death(end, journal)
        finally:
            with contextlib.suppress(TableError):
                await self.table.connect()

    async def _after_death(self, end: ProcessEnd, journal: Path) -> TreatmentResult:
        """The treatment process died: release the table, record what its journal holds and the
        session as interrupted (or as it ended, if it got that far), sealed."""
        cause = end.cause()
        log.error("treatment process died", session=self.session_id, cause=cause)
        with contextlib.suppress(TableError):
            await self.table.connect()
            await self.table.stop(StopKind.RELEASE)
        reason = f"{cause}; the table released (its watchdog and the workstation)"
        await asyncio.to_thread(recover_journal, self.store, journal, reason)
        try:
            row = await asyncio.to_thread(self.store.get_session, self.session_id)
        except StoreError:
            raise StartRefused([f"{cause} before the session started"]) from None
        finished = end.finished
        if finished is None or row.outcome != finished.outcome.value:
            t = row.last_sample_t or 0.0
            finished = Finished(
                self.session_id,
                t,
                row.ended_at or self.clock.wall(t),
                Outcome(row.outcome or Outcome.INTERRUPTED),
                row.outcome_reason or reason,
                row.sample_count,
            )
            self.stream.publish(finished)  # views end with the session
        await self.lockouts.wait_written()
        return TreatmentResult(
            self.session_id, finished, row.seal_digest or "", self.lockouts.locked
        )
