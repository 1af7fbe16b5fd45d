"""One treatment, end to end: check the prescription, run it on a table, record every record, seal.

This is where a session's pieces meet: the control loop (devices) publishes; the recorder (here)
subscribes and writes off the loop; views subscribe too. Nothing here speaks a wire protocol: the
caller hands in a connected :class:`devices.contract.Table`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from devices.clock import Clock
from devices.contract import DeviceInfo, Table
from devices.limits import PatientFacts, SafetyLimits, Violation, validate
from devices.loop import ControlLoop
from devices.profiles import ForceProfile
from devices.records import Finished
from devices.stream import Stream, Subscriber
from session.models import Patient
from session.recorder import Recorder
from session.store import SessionContext, SessionQuery, Store


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
        contraindications=frozenset(patient.contraindications),
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


@dataclass
class Treatment:
    """A session about to run: build it, subscribe views to ``stream``, then ``await run()``.

    ``loop`` is exposed so the operator's pause, resume, stop and release reach the table.
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
    tick_hz: float | None = None
    operator_confirmed: bool = False
    flush_interval: float = 0.25
    table_label: str | None = None
    prior_sessions: Mapping[str, int] | None = None
    stream: Stream = field(default_factory=Stream)

    def __post_init__(self) -> None:
        self.loop = ControlLoop(
            self.table,
            self.profile,
            patient=patient_facts(self.patient, self.prior_sessions),
            limits=self.limits,
            clock=self.clock,
            stream=self.stream,
            tick_hz=self.tick_hz,
            operator_confirmed=self.operator_confirmed,
            extra={"workstation": self.context.workstation, "regions": list(self.context.regions)},
            label=self.table_label,
        )
        self.recorder = Recorder(
            self.store, self.context, self.loop.request_stop, flush_interval=self.flush_interval
        )
        self.stream.subscribe(self.recorder)

    @property
    def session_id(self) -> str:
        return self.loop.run_id

    def subscribe(self, subscriber: Subscriber) -> None:
        self.stream.subscribe(subscriber)

    async def run(self) -> TreatmentResult:
        """Run to the end. Raises ``devices.loop.StartRefused`` if nothing could start (no record
        is made then); otherwise the session is recorded and sealed whatever its outcome."""
        async with self.recorder:
            finished = await self.loop.run()
            seal = await self.recorder.wait_finished()
        return TreatmentResult(self.session_id, finished, seal)
