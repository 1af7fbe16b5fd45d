"""The workstation service: every configured table open, treatments running in the background.

One object owns what the HTTP API drives: the session database (created if empty, checked at start,
and this workstation's sessions whose process is gone recovered), one connected table per
configured table (sim:// tables get their simulator on a clock running ``settings.sim_time_scale``
times faster), and at most one running treatment per table, several tables at once, all in the
workstation's treatment process (:mod:`session.control_host`), apart from this one, so no request,
export or bug here can delay their ticks. A start is checked against the safety limits first and refused with every
violation. Views listen through a :class:`LatestQueue` each, so a slow screen never slows a table.
On close every running treatment is released at once and awaited (so each is recorded and sealed),
then the tables are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

import structlog
from sqlmodel import Session, col, select

from devices.clock import ScaledClock
from devices.contract import DeviceInfo, TableState
from devices.errors import TableError, TractionError
from devices.limits import SafetyLimits, Violation, blocking, load_limits, validate
from devices.loop import StartRefused
from devices.profiles import ForceProfile
from devices.records import Event, Finished, Record, Sample, Started
from devices.stream import LatestQueue
from devices.urls import parse_table_url
from session.accounts import Accounts
from session.audit import AccessLog
from session.db import make_engine, prepare
from session.identity import WorkstationIdentity, hold_service_lock, load_identity
from session.lockouts import Lockouts, TableLockout, TableRef
from session.models import Patient, StoredSample
from session.runner import Treatment, TreatmentResult, patient_facts, preflight
from session.store import SessionContext, Store
from session.treatment_proxy import TreatmentGone
from traction.context import claim_workstation
from traction.settings import Settings, TableSetting
from traction.tables import OpenTable, open_table

log = structlog.get_logger(__name__)


class ServiceError(TractionError):
    """A request the workstation service refuses; the message says why."""


class UnknownTable(ServiceError):
    pass


class UnknownSession(ServiceError):
    pass


class TableBusy(ServiceError):
    pass


class SessionNotRunning(ServiceError):
    pass


class SafetyRefused(ServiceError):
    """Settings that break the safety limits; ``violations`` holds every one, warnings too."""

    def __init__(self, message: str, violations: Sequence[Violation]) -> None:
        self.violations = list(violations)
        super().__init__(message + "; ".join(str(v) for v in blocking(self.violations)))


class PrescriptionRefused(SafetyRefused):
    """The prescription breaks the safety limits (nothing moved)."""

    def __init__(self, table: str, violations: Sequence[Violation]) -> None:
        super().__init__(f"table {table}: not started; ", violations)


class SettingsRefused(SafetyRefused):
    """A live settings change breaks the safety limits; the session runs on unchanged (the
    control loop recorded the refusal as an event)."""

    def __init__(self, session_id: str, violations: Sequence[Violation]) -> None:
        super().__init__(f"session {session_id}: settings not changed; ", violations)


class NotStarted(ServiceError):
    """The table refused to start (not ready, faulted); ``reasons`` says why (nothing moved)."""

    def __init__(self, table: str, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__(f"table {table}: not started; " + "; ".join(self.reasons))


@dataclass(frozen=True)
class Prescription:
    """What a start or a validation needs: the table, the profile, the patient and the context."""

    table: str
    profile: ForceProfile
    patient: Patient
    context: SessionContext
    operator_confirmed: bool = False
    prior_sessions: Mapping[str, int] | None = None  # for the first-session caps


class LiveWatch:
    """Keeps a running treatment's latest records, for table state and late listeners."""

    def __init__(self) -> None:
        self.started: Started | None = None
        self.last_sample: Sample | None = None
        self.last_event: Event | None = None
        self.finished: Finished | None = None
        self.started_event = asyncio.Event()

    def deliver(self, record: Record) -> None:
        if isinstance(record, Sample):
            self.last_sample = record
        elif isinstance(record, Event):
            self.last_event = record
        elif isinstance(record, Started):
            self.started = record
            self.started_event.set()
        else:
            self.finished = record


@dataclass
class RunningTreatment:
    """A treatment in progress on one table, and who started it."""

    table: str
    treatment: Treatment
    watch: LiveWatch
    task: asyncio.Task[TreatmentResult]
    started_by: str

    @property
    def session_id(self) -> str:
        return self.treatment.session_id

    def listen(self, maxlen: int = 1000) -> LatestQueue:
        """A queue of this session's records from now on, its ``started`` record first. A
        listener that arrives after the treatment finished (it may be looked up while running and
        subscribe a moment later) gets the ``finished`` record at once, so its stream ends."""
        queue = LatestQueue(maxlen)
        if self.watch.started is not None:
            queue.deliver(self.watch.started)
        if self.watch.finished is not None:
            queue.deliver(self.watch.finished)
            return queue
        self.treatment.subscribe(queue)
        return queue

    def unlisten(self, queue: LatestQueue) -> None:
        self.treatment.stream.unsubscribe(queue)


@dataclass
class TableSlot:
    """One configured table, open, with the treatment running on it if any."""

    setting: TableSetting
    opened: OpenTable
    clock: ScaledClock
    device: DeviceInfo
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    running: RunningTreatment | None = None


class WorkstationService:
    """Use as ``async with WorkstationService(settings) as service:``."""

    def __init__(
        self,
        settings: Settings,
        limits: SafetyLimits | None = None,
        flush_interval: float = 0.25,
    ) -> None:
        self.settings = settings
        self.limits = limits or load_limits()
        self.flush_interval = flush_interval
        self.engine = make_engine(settings.effective_database_url)
        self.store = Store(self.engine)
        self.accounts = Accounts(self.engine)
        self.lockouts = Lockouts(self.engine)
        self.access_log = AccessLog(
            self.engine
        )  # one for every request: their entries group-commit
        self.schema_revision: str | None = None
        self.identity: WorkstationIdentity | None = None
        self.slots: dict[str, TableSlot] = {}
        self._running: dict[str, RunningTreatment] = {}
        self._stack = contextlib.AsyncExitStack()

    # --- life ---------------------------------------------------------------------------------

    async def __aenter__(self) -> WorkstationService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Refuse a second service of this workstation; prepare the database, recover sessions
        whose process is gone, open every table."""
        service_lock = hold_service_lock(
            load_identity(self.settings.data_dir, self.settings.workstation)
        )
        self._stack.callback(service_lock.release)
        try:
            self.schema_revision = await asyncio.to_thread(self._prepare_database)
            for setting in self.settings.tables:
                simulated = parse_table_url(setting.url).scheme == "sim"
                clock = ScaledClock(self.settings.sim_time_scale if simulated else 1.0)
                opened = await self._stack.enter_async_context(
                    open_table(setting.url, clock, setting.name)
                )
                device = await opened.table.identify()
                self.slots[setting.name] = TableSlot(setting, opened, clock, device)
                log.info("table open", table=setting.name, model=device.model)
        except BaseException:
            await self._stack.aclose()
            raise

    def _prepare_database(self) -> str:
        """Create the schema of an empty store, never upgrade one in use (``traction db
        upgrade`` does that, on purpose); claim this workstation's identity and recover its
        sessions whose process is gone."""
        revision = prepare(self.engine)
        self.identity, _ = claim_workstation(
            self.store, self.settings.data_dir, self.settings.workstation
        )
        return revision

    async def close(self) -> None:
        """Release every running treatment at once, wait for each to be recorded, close tables."""
        running = list(self._running.values())
        for item in running:
            item.treatment.loop.release("workstation service shutting down")
        if running:
            await asyncio.gather(*(item.task for item in running), return_exceptions=True)
        await self._stack.aclose()
        self.slots.clear()
        self.store.close()  # the recorder's writer holds a connection of its own, outside the pool
        self.engine.dispose()

    def _identity(self) -> WorkstationIdentity:
        if self.identity is None:
            raise ServiceError("the workstation service is not started")
        return self.identity

    # --- tables -------------------------------------------------------------------------------

    def slot(self, name: str) -> TableSlot:
        try:
            return self.slots[name]
        except KeyError:
            known = ", ".join(self.slots) or "none"
            raise UnknownTable(f"no table named {name!r}; tables: {known}") from None

    async def read_state(self, name: str) -> TableState | None:
        """A fresh reading of an idle table; None while a treatment owns the table (its live
        records say what it is doing)."""
        slot = self.slot(name)
        if slot.running is not None:
            return None
        async with slot.lock:
            if slot.running is not None:
                return None
            return await slot.opened.table.read_state()

    def table_ref(self, name: str) -> TableRef:
        slot = self.slot(name)
        return TableRef(
            self.settings.workstation, name, slot.setting.url, slot.device.serial_number
        )

    async def alarms(self, name: str) -> list[TableLockout]:
        """The table's unacknowledged locks: its alarm stays raised until they are acknowledged."""
        ref = self.table_ref(name)
        return await asyncio.to_thread(self.lockouts.active, ref.workstation, ref.name, ref.serial)

    async def acknowledge(self, name: str, who: str, why: str) -> tuple[list[TableLockout], str]:
        """Clear the table's locks, recording who and why; LockoutError if it is not locked.

        Acknowledging says the patient and the table were checked, so the fault the table itself
        latched with the trip is cleared too (as ``traction tables clear-fault`` would). Returns
        the locks cleared and the table's state afterwards, in words: a fault still present on
        the table stays and is said so.
        """
        ref = self.table_ref(name)
        locks = await asyncio.to_thread(
            self.lockouts.acknowledge, ref.workstation, ref.name, who, why, ref.serial
        )
        log.warning("table lock acknowledged", table=name, who=who, why=why)
        slot = self.slot(name)
        async with slot.lock:
            if slot.running is not None:
                return locks, "running a session"
            try:
                await slot.opened.table.clear_fault()
                state = await slot.opened.table.read_state()
            except TableError as exc:
                return locks, f"the table still reports a fault: {exc.message}"
        if state.ready:
            return locks, "ready"
        return locks, "not ready: check the stop switch and the table's fault"

    # --- treatments ---------------------------------------------------------------------------

    async def check(self, prescription: Prescription) -> tuple[DeviceInfo, list[Violation]]:
        """Every violation the prescription would meet; nothing moves. A busy table is checked
        against the identity it reported when opened (the running loop owns its wire)."""
        slot = self.slot(prescription.table)
        if slot.running is None:
            async with slot.lock:
                if slot.running is None:
                    slot.device, violations = await preflight(
                        slot.opened.table,
                        prescription.profile,
                        prescription.patient,
                        self.limits,
                        prescription.operator_confirmed,
                        prescription.prior_sessions,
                    )
                    return slot.device, violations
        facts = patient_facts(prescription.patient, prescription.prior_sessions)
        confirmed = prescription.operator_confirmed
        return slot.device, validate(
            prescription.profile, facts, self.limits, slot.device, confirmed
        )

    async def start_session(self, prescription: Prescription, who: str) -> RunningTreatment:
        """Check, then start a treatment in the background; return once the table has started.

        Raises TableLocked (an unacknowledged lock-severity trip), PrescriptionRefused with every
        violation, TableBusy, or NotStarted; in each case nothing moved and nothing was recorded.
        """
        slot = self.slot(prescription.table)
        async with slot.lock:
            if slot.running is not None:
                raise TableBusy(
                    f"table {slot.setting.name} is running session {slot.running.session_id}; "
                    "stop it first"
                )
            ref = self.table_ref(slot.setting.name)
            await asyncio.to_thread(self.lockouts.refuse_if_locked, ref)
            slot.device, violations = await preflight(
                slot.opened.table,
                prescription.profile,
                prescription.patient,
                self.limits,
                prescription.operator_confirmed,
                prescription.prior_sessions,
            )
            if blocking(violations):
                raise PrescriptionRefused(slot.setting.name, violations)
            treatment = Treatment(
                self.store,
                slot.opened.table,
                prescription.profile,
                prescription.patient,
                # owned by this workstation's identity; a simulator's session is marked
                # simulated: never billed
                dataclasses.replace(
                    prescription.context,
                    workstation_id=self._identity().id,
                    simulated=prescription.context.simulated or slot.opened.simulated,
                ),
                self.limits,
                slot.clock,
                self._identity().journal_dir,
                operator_confirmed=prescription.operator_confirmed,
                flush_interval=self.flush_interval,
                table_label=f"{slot.setting.name} ({slot.setting.url})",
                prior_sessions=prescription.prior_sessions,
                unit=self.settings.display_unit,
                table_name=slot.setting.name,
                table_url=slot.setting.url,
                memory_limit_bytes=self.settings.treatment_memory_mb * 1024 * 1024,
            )
            watch = LiveWatch()
            treatment.subscribe(watch)
            task = asyncio.create_task(treatment.run(), name=f"treatment {treatment.session_id}")
            running = RunningTreatment(slot.setting.name, treatment, watch, task, who)
            started = asyncio.ensure_future(watch.started_event.wait())
            try:
                await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                started.cancel()
            if watch.started is None:
                self._start_failed(slot.setting.name, task)
            slot.running = running
            self._running[running.session_id] = running
            task.add_done_callback(lambda _: self._ended(slot, running))
            log.info("session started", table=slot.setting.name, session=running.session_id)
            return running

    def _start_failed(self, table: str, task: asyncio.Task[TreatmentResult]) -> NoReturn:
        error = task.exception()
        if isinstance(error, StartRefused):
            if error.violations:
                raise PrescriptionRefused(table, error.violations)
            raise NotStarted(table, error.reasons)
        if error is not None:
            raise error
        raise NotStarted(table, ["the session ended before it started"])

    def _ended(self, slot: TableSlot, running: RunningTreatment) -> None:
        slot.running = None
        self._running.pop(running.session_id, None)
        task = running.task
        error = None if task.cancelled() else task.exception()
        if error is not None:
            log.error("treatment failed", session=running.session_id, error=repr(error))
        else:
            log.info("session ended", session=running.session_id)

    def running(self, session_id: str) -> RunningTreatment | None:
        return self._running.get(session_id)

    def running_sessions(self) -> list[RunningTreatment]:
        return list(self._running.values())

    def _running_or_refuse(self, session_id: str) -> RunningTreatment:
        running = self._running.get(session_id)
        if running is None:
            raise SessionNotRunning(f"session {session_id} is not running on this workstation")
        return running

    def control(self, session_id: str, action: str, who: str) -> RunningTreatment:
        """Pause, resume, stop (controlled ramp-down) or release (at once) a running session;
        it takes effect at the loop's next tick."""
        running = self._running_or_refuse(session_id)
        loop = running.treatment.loop
        actions = {
            "pause": lambda: loop.pause(f"operator pause ({who})"),
            "resume": lambda: loop.resume(f"operator resume ({who})"),
            "stop": lambda: loop.stop(f"operator stop ({who})"),
            "release": lambda: loop.release(f"operator emergency release ({who})"),
        }
        if action not in actions:
            raise ServiceError(f"action {action!r} must be one of {', '.join(actions)}")
        actions[action]()
        return running

    async def change_settings(
        self,
        session_id: str,
        profile: ForceProfile,
        who: str,
        operator_confirmed: bool = False,
        reason: str | None = None,
    ) -> tuple[RunningTreatment, list[Violation]]:
        """Change a running session's profile live. The loop re-validates it for this patient on
        this table and records the change (at its next tick) or the refusal as an event. Returns
        every violation (warnings only, when it applies); raises SettingsRefused on a blocking
        one and SessionNotRunning. The treatment process checks the change and answers."""
        running = self._running_or_refuse(session_id)
        why = f"{reason or 'operator settings change'} ({who})"
        try:
            violations = await running.treatment.loop.update_profile(
                profile, operator_confirmed, why
            )
        except TreatmentGone:
            raise SessionNotRunning(f"session {session_id} has ended") from None
        if blocking(violations):
            raise SettingsRefused(session_id, violations)
        log.info("settings changed", session=session_id, who=who)
        return running, violations

    async def wait_ended(self, session_id: str) -> TreatmentResult | None:
        """Wait for a running session to be recorded and sealed (None if it is not running)."""
        running = self._running.get(session_id)
        if running is None:
            return None
        return await asyncio.shield(running.task)

    # --- reading records ------------------------------------------------------------------------

    def samples_page(self, session_id: str, after_seq: int, limit: int) -> list[StoredSample]:
        """Up to ``limit`` samples with seq above ``after_seq``, in order (keyset paging)."""
        with Session(self.engine) as db:
            return list(
                db.exec(
                    select(StoredSample)
                    .where(StoredSample.session_id == session_id)
                    .where(StoredSample.seq > after_seq)
                    .order_by(col(StoredSample.seq))
                    .limit(limit)
                ).all()
            )
