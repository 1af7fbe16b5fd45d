"""A session's facts: what its documents and claims need from its samples, computed once at sealing.

A clinic records about 10,000 sessions a year and a long session holds hundreds of thousands of
samples, so nothing that bills or lists sessions may read samples. The figures a claim and a note
need from them (delivered minutes, pauses, time at target, forces in hold, cycles by force, the
interruptions and settings changes, and the force/time curve reduced for plotting) are computed in
the same pass over the samples that computes the seal, and stored beside the session in
``session_facts``. Dates, outcome and people stay on the session row.

The seal status is a fact too: ``seal_verified`` is true when the facts were computed with the seal,
and every later verification (:func:`session.seal.verify`: ``traction verify``, a JSON or PDF export)
records what it found, so a claim built without re-reading samples still refuses a record found
changed. Facts belong to one seal (``seal_digest``); facts missing or computed before a seal are
computed again on first use (:func:`facts_for`), which covers sessions sealed before this table
existed.

Forces here are newtons and times session seconds; documents convert to the clinic's units.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, col, select

from devices.records import EventKind, Phase
from session.cycles import CycleCount
from session.models import UTCDateTime
from session.store import Store, StoreError

INTERRUPTING = frozenset(
    {
        EventKind.TRIP,
        EventKind.STOP_SWITCH,
        EventKind.FAULT,
        EventKind.LINK_LOST,
        EventKind.PAUSE,
        EventKind.STOP_REQUESTED,
    }
)
MAX_CREDITED_GAP_S = 1.0  # a gap in readings longer than this is not credited as time at target
PLOT_BUCKETS = 600

HOLD_FORCE_KEYS = ("hold_force_n", "target_n", "target_force_n", "max_force_n")
"""Where a settings snapshot's profile may name its hold force (newest name first)."""


def target_tolerance_n(hold_n: float) -> float:
    """Within 10% of the hold force, and never tighter than 5 N (about 1 lbf of load-cell noise)."""
    return max(5.0, 0.10 * hold_n)


def hold_force_n(profile: Mapping[str, Any]) -> float | None:
    """The profile's hold force in newtons, or None when the snapshot names none."""
    for key in HOLD_FORCE_KEYS:
        value = profile.get(key)
        if isinstance(value, int | float):
            return float(value)
    return None


class DeliveredStats:
    """Streams samples once and accumulates what was delivered; memory does not grow with samples."""

    def __init__(self, tolerance_n: float) -> None:
        self.tolerance_n = tolerance_n
        self.count = 0
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.paused_s = 0.0
        self.at_target_s = 0.0
        self.peak_hold_n: float | None = None
        self.hold_sum_n = 0.0
        self.hold_count = 0
        self.cycle_count = CycleCount()

    def add(self, t: float, target_n: float, measured_n: float, phase: str) -> None:
        dt = 0.0 if self.last_t is None else max(0.0, t - self.last_t)
        if self.first_t is None:
            self.first_t = t
        self.last_t = t
        self.count += 1
        self.cycle_count.add(phase, target_n)
        if phase == Phase.PAUSED:
            self.paused_s += dt
            return
        if phase == Phase.HOLD:
            if abs(measured_n - target_n) <= self.tolerance_n:
                self.at_target_s += min(dt, MAX_CREDITED_GAP_S)
            self.peak_hold_n = (
                measured_n if self.peak_hold_n is None else max(self.peak_hold_n, measured_n)
            )
            self.hold_sum_n += measured_n
            self.hold_count += 1

    @property
    def mean_hold_n(self) -> float | None:
        return self.hold_sum_n / self.hold_count if self.hold_count else None

    @property
    def elapsed_s(self) -> float:
        if self.first_t is None or self.last_t is None:
            return 0.0
        return self.last_t - self.first_t


@dataclass
class Bucket:
    """One time slice of the plot: the extremes of measured and target force in it (newtons)."""

    t_min: float
    t_max: float
    lo: float
    hi: float
    target_lo: float
    target_hi: float
    paused: bool


class PlotReducer:
    """Per time bucket, the min and max of measured and target force, fed one sample at a time.
    Peaks survive because the max of every bucket is kept; memory is bounded by ``buckets``."""

    def __init__(self, t0: float, span_s: float, buckets: int = PLOT_BUCKETS) -> None:
        self.t0 = t0
        self.count = buckets
        self.width = max(span_s, 1e-9) / buckets
        self._out: dict[int, Bucket] = {}

    def add(self, t: float, target_n: float, measured_n: float, phase: str) -> None:
        i = min(self.count - 1, max(0, int((t - self.t0) / self.width)))
        b = self._out.get(i)
        paused = phase == "paused"
        if b is None:
            self._out[i] = Bucket(t, t, measured_n, measured_n, target_n, target_n, paused)
            return
        b.t_min, b.t_max = min(b.t_min, t), max(b.t_max, t)
        b.lo, b.hi = min(b.lo, measured_n), max(b.hi, measured_n)
        b.target_lo, b.target_hi = min(b.target_lo, target_n), max(b.target_hi, target_n)
        b.paused = b.paused or paused

    def buckets(self) -> list[Bucket]:
        return [self._out[i] for i in sorted(self._out)]


class SampleLike(Protocol):
    """What the statistics need from a sample (``devices.records.Sample`` or a stored row)."""

    @property
    def t(self) -> float: ...
    @property
    def target_n(self) -> float: ...
    @property
    def measured_n(self) -> float: ...
    @property
    def phase(self) -> Phase | str: ...


def reduce_for_plot(
    samples: Iterable[SampleLike], t0: float, span_s: float, buckets: int = PLOT_BUCKETS
) -> list[Bucket]:
    """One pass over the samples with a :class:`PlotReducer`."""
    reducer = PlotReducer(t0, span_s, buckets)
    for s in samples:
        reducer.add(s.t, s.target_n, s.measured_n, str(s.phase))
    return reducer.buckets()


class SessionFactsRow(SQLModel, table=True):
    """The stored facts of one finished session (see the module docstring)."""

    __tablename__ = "session_facts"

    session_id: str = Field(sa_type=sa.String(64), foreign_key="sessions.id", primary_key=True)
    seal_digest: str | None = Field(default=None, sa_type=sa.String(80))
    computed_at: datetime = Field(sa_type=UTCDateTime)
    sample_count: int = Field(default=0)
    event_count: int = Field(default=0)
    first_t: float | None = Field(default=None, sa_type=sa.Float)
    last_t: float | None = Field(default=None, sa_type=sa.Float)
    paused_s: float = Field(default=0.0, sa_type=sa.Float)
    at_target_s: float = Field(default=0.0, sa_type=sa.Float)
    tolerance_n: float | None = Field(default=None, sa_type=sa.Float)  # None: no hold force
    peak_hold_n: float | None = Field(default=None, sa_type=sa.Float)
    mean_hold_n: float | None = Field(default=None, sa_type=sa.Float)
    cycles: dict[str, dict[str, int]] = Field(default_factory=dict, sa_type=sa.JSON)
    """Holds entered, ``{"full": {force_n: count}, "stepped": {...}}`` (see session.cycles)."""
    occurrences: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    plot: list[list[Any]] = Field(default_factory=list, sa_type=sa.JSON)
    seal_verified: bool = Field(default=False)
    verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    @property
    def elapsed_s(self) -> float:
        if self.first_t is None or self.last_t is None:
            return 0.0
        return self.last_t - self.first_t

    @property
    def treatment_s(self) -> float:
        """Elapsed minus paused time: what payers count as minutes of traction."""
        return max(0.0, self.elapsed_s - self.paused_s)

    def cycle_count(self) -> CycleCount:
        counted = CycleCount()
        for kind, target in (("full", counted.full), ("stepped", counted.stepped)):
            target.update({float(f): n for f, n in (self.cycles.get(kind) or {}).items()})
        return counted

    def plot_buckets(self) -> list[Bucket]:
        return [Bucket(*values) for values in self.plot]

    def is_current(self, seal_digest: str | None) -> bool:
        """True when these facts were computed under the session's present seal."""
        return self.seal_digest == seal_digest


class FactsBuilder:
    """Accumulates a session's facts from its samples and events, in one pass of each."""

    def __init__(self, session_id: str, settings: Mapping[str, Any], start_t: float, end_t: float):
        self.session_id = session_id
        self.start_t = start_t
        hold = hold_force_n(settings.get("profile") or {})
        self.tolerance_n = None if hold is None else target_tolerance_n(hold)
        self.stats = DeliveredStats(self.tolerance_n if self.tolerance_n is not None else 0.0)
        self.plot = PlotReducer(start_t, max(end_t - start_t, 1.0))
        self.occurrences: list[dict[str, Any]] = []
        self.events = 0

    def add_sample(self, t: float, target_n: float, measured_n: float, phase: str) -> None:
        self.stats.add(t, target_n, measured_n, phase)
        self.plot.add(t, target_n, measured_n, phase)

    def add_event(self, t: float, kind: str, reason: str) -> None:
        self.events += 1
        if kind in INTERRUPTING or kind == EventKind.SETTINGS_CHANGED:
            self.occurrences.append(
                {"at_s": round(t - self.start_t, 3), "kind": kind, "reason": reason}
            )

    def build(self, seal_digest: str | None, seal_verified: bool) -> SessionFactsRow:
        s = self.stats
        now = datetime.now(UTC)
        return SessionFactsRow(
            session_id=self.session_id,
            seal_digest=seal_digest,
            computed_at=now,
            sample_count=s.count,
            event_count=self.events,
            first_t=s.first_t,
            last_t=s.last_t,
            paused_s=s.paused_s,
            at_target_s=s.at_target_s,
            tolerance_n=self.tolerance_n,
            peak_hold_n=s.peak_hold_n,
            mean_hold_n=s.mean_hold_n,
            cycles={
                "full": {repr(f): n for f, n in s.cycle_count.full.items()},
                "stepped": {repr(f): n for f, n in s.cycle_count.stepped.items()},
            },
            occurrences=self.occurrences,
            plot=[
                [b.t_min, b.t_max, b.lo, b.hi, b.target_lo, b.target_hi, b.paused]
                for b in self.plot.buckets()
            ],
            seal_verified=seal_verified,
            verified_at=now if seal_digest is not None else None,
        )


def record(store: Store, facts: SessionFactsRow) -> SessionFactsRow:
    """Store a session's facts, replacing facts computed under an earlier (or no) seal."""
    with Session(store.engine, expire_on_commit=False) as db:
        existing = db.get(SessionFactsRow, facts.session_id)
        if existing is not None:
            db.delete(existing)
            db.flush()
        db.add(facts)
        db.commit()
    return facts


def record_verification(store: Store, session_id: str, seal_digest: str | None, ok: bool) -> None:
    """Keep what a verification of the seal found, if the facts belong to that seal."""
    table = SessionFactsRow.__table__  # type: ignore[attr-defined]
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(table)
            .where(table.c.session_id == session_id)
            .where(table.c.seal_digest == seal_digest)
            .values(seal_verified=ok, verified_at=datetime.now(UTC))
        )


def load(store: Store, session_ids: Sequence[str]) -> dict[str, SessionFactsRow]:
    """The stored facts of these sessions (those that have any), in one query."""
    if not session_ids:
        return {}
    with Session(store.engine, expire_on_commit=False) as db:
        rows = db.exec(
            select(SessionFactsRow).where(col(SessionFactsRow.session_id).in_(list(session_ids)))
        ).all()
    return {row.session_id: row for row in rows}


def facts_for(store: Store, session_id: str) -> SessionFactsRow:
    """The session's facts under its present seal, computed now (one pass over its samples) if
    they are missing or belong to an earlier state. Only a finished session has facts."""
    row = store.get_session(session_id)
    if row.outcome is None:
        raise StoreError(f"session {session_id} has not finished; it has no facts yet")
    found = load(store, [session_id]).get(session_id)
    if found is not None and found.is_current(row.seal_digest):
        return found
    from session.seal import compute_with_facts, digest_of  # seal imports this module

    parts, facts = compute_with_facts(store, session_id)
    if row.seal_digest is not None:
        facts.seal_digest = row.seal_digest
        facts.seal_verified = digest_of(parts) == row.seal_digest
    return record(store, facts)
