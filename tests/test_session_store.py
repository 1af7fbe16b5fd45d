"""The session store on SQLite and PostgreSQL: schema, migrations, queries, amendments, seals."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest_db import make_started
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import session.accounts  # noqa: F401  (users and tokens belong to the compared metadata)
import session.audit  # noqa: F401  (and the access log)
import session.console_sessions  # noqa: F401  (console sessions too)
import session.facts  # noqa: F401  (and session facts)
import session.lockouts  # noqa: F401  (so do lockouts)
import session.passwords  # noqa: F401  (password hashes too)
import session.plans  # noqa: F401  (and plans of care)
from devices.records import Event, EventKind, Finished, Outcome, Phase, Sample
from session.db import SCHEMA_HEAD, SchemaError, check_schema, head_revision, make_engine, upgrade
from session.seal import seal, verify
from session.store import NumberedEvent, SessionContext, SessionQuery, Store, StoreError
from session.writer import COPY_FROM_ROWS


def record_session(
    store: Store,
    context: SessionContext,
    *,
    samples: int = 50,
    outcome: Outcome = Outcome.COMPLETED,
    wall: datetime | None = None,
    finish: bool = True,
) -> str:
    started = make_started()
    if wall is not None:
        started = type(started)(**{**started.__dict__, "wall": wall})
    run = started.run_id
    store.create_session(started, context)
    store.add_batch(
        run,
        [Sample(run, i, i * 0.02, 300.0, 298.5 + i / 7, Phase.HOLD, 1) for i in range(samples)],
        [NumberedEvent(0, Event(run, 0.0, EventKind.PHASE, "ramp up", {"to": "ramp_up"}))],
    )
    if finish:
        store.finish(Finished(run, samples * 0.02, started.wall, outcome, "done", samples))
    return run


def test_upgrade_from_empty_reaches_head_and_check_schema_accepts_it(db_url: str) -> None:
    engine = make_engine(db_url)
    with pytest.raises(SchemaError, match="traction db upgrade"):
        check_schema(engine)
    assert upgrade(engine) == head_revision()
    assert check_schema(engine) == head_revision()
    assert upgrade(engine) == head_revision()  # idempotent
    engine.dispose()


def test_models_agree_with_migration_head(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


def test_schema_head_constant_is_alembics_head() -> None:
    assert head_revision() == SCHEMA_HEAD, (
        f"session/db.py SCHEMA_HEAD is {SCHEMA_HEAD!r} but the newest migration is "
        f"{head_revision()!r}: set SCHEMA_HEAD to it"
    )


def test_check_schema_refuses_a_database_from_newer_software(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'ffff_future'"))
    with pytest.raises(
        SchemaError, match="newer than this software.*upgrade the traction software"
    ):
        check_schema(engine)


def test_sqlite_default_engine_uses_wal(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/x.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_session_holds_every_documentation_element(store: Store, context: SessionContext) -> None:
    run = record_session(store, context, samples=10)
    row = store.get_session(run)
    assert (row.device_model, row.device_serial, row.device_manufacturer) == (
        "LT-200",
        "SN-4711",
        "Tractek",
    )
    assert row.device_rated_max_force_n == 890.0
    assert row.settings["profile"]["target_n"] == 300.0 and row.settings["run_id"] == run
    assert row.regions == ["lumbar"] and row.diagnosis_codes == ["M51.16"]
    assert row.plan_of_care_ref == "POC-2024-17" and row.medical_necessity
    assert (row.patient_position, row.pull_angle_deg) == ("supine", 20.0)
    assert row.supervising_clinician_id == context.supervising_clinician_id
    assert row.started_at.tzinfo is not None and row.ended_at is not None
    assert (row.outcome, row.sample_count, row.event_count) == ("completed", 10, 1)
    assert row.last_sample_t == pytest.approx(9 * 0.02)


def test_samples_stream_in_order_across_pages(store: Store, context: SessionContext) -> None:
    run = record_session(store, context, samples=1234)
    seqs = [s.seq for s in store.iter_samples(run, batch=100)]
    assert seqs == list(range(1234))
    assert [s.seq for s in store.iter_samples(run, batch=1234)] == list(range(1234))


def test_retried_batch_neither_duplicates_nor_fails(store: Store, context: SessionContext) -> None:
    run = record_session(store, context, samples=20, finish=False)
    store.add_batch(run, [Sample(run, i, i * 0.02, 1.0, 1.0, Phase.HOLD) for i in range(15, 25)])
    assert store.sample_count(run) == 25


def test_a_retried_large_batch_neither_duplicates_nor_fails(
    store: Store, context: SessionContext
) -> None:
    """A batch the size of a recorder's catch-up: PostgreSQL COPYs it, and a COPY that meets a
    stored row is rolled back and the rows inserted again, made afresh from the samples."""
    run = record_session(store, context, samples=20, finish=False)
    end = 15 + COPY_FROM_ROWS
    batch = [Sample(run, i, i * 0.02, 1.0, 1.0, Phase.HOLD) for i in range(15, end)]
    store.add_batch(run, batch)
    store.add_batch(run, batch)
    stored = list(store.iter_samples(run))
    assert [s.seq for s in stored] == list(range(end))
    assert stored[-1].phase == "hold" and stored[-1].t == pytest.approx((end - 1) * 0.02)


def test_queries_by_patient_clinician_date_and_outcome(
    store: Store, context: SessionContext
) -> None:
    day = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    a = record_session(store, context, wall=day)
    b = record_session(store, context, wall=day + timedelta(days=1), outcome=Outcome.TRIPPED)
    other_patient = store.add_patient("MRN-0002", 60.0)
    other_pt = store.add_clinician("Lee Park", "DC", "DC")
    assert other_patient.id is not None and other_pt.id is not None
    c = record_session(
        store,
        SessionContext(other_patient.id, other_pt.id, "ws-2", ("cervical",)),
        wall=day + timedelta(days=2),
    )

    def ids(**kw: object) -> list[str]:
        return [s.id for s in store.find_sessions(SessionQuery(**kw))]  # type: ignore[arg-type]

    assert ids() == [a, b, c]
    assert ids(patient_id=context.patient_id) == [a, b]
    assert ids(clinician_id=context.supervising_clinician_id) == [a, b]
    assert ids(clinician_id=other_pt.id) == [c]
    assert ids(since=day + timedelta(hours=1), until=day + timedelta(days=2)) == [b]
    assert ids(outcome=Outcome.TRIPPED) == [b]
    assert ids(workstation="ws-2") == [c]


def test_amendments_are_logged_and_append_only(store: Store, context: SessionContext) -> None:
    run = record_session(store, context)
    store.amend(run, "patient_response", "Tolerated well", "dana", "completed after session")
    store.amend(run, "patient_response", "Tolerated well; reduced pain 6/10 to 3/10", "dana", "add")
    signer = context.supervising_clinician_id
    store.amend(run, "signed_by_id", signer, "sam", "signature")
    row = store.get_session(run)
    assert row.patient_response == "Tolerated well; reduced pain 6/10 to 3/10"
    assert row.signed_by_id == signer and row.signed_at is not None
    log = store.amendments(run)
    assert [(a.field_name, a.old_value, a.new_value) for a in log] == [
        ("patient_response", None, "Tolerated well"),
        ("patient_response", "Tolerated well", "Tolerated well; reduced pain 6/10 to 3/10"),
        ("signed_by_id", None, signer),
    ]
    assert all(a.at.tzinfo is not None and a.why for a in log)
    assert not hasattr(store, "delete_amendment") and not hasattr(store, "update_sample")


def test_amend_refuses_recorded_fields_and_bad_values(
    store: Store, context: SessionContext
) -> None:
    run = record_session(store, context)
    with pytest.raises(StoreError, match="'outcome' cannot be amended"):
        store.amend(run, "outcome", "completed", "x", "y")
    with pytest.raises(StoreError, match="abn_status 'maybe' must be one of"):
        store.amend(run, "abn_status", "maybe", "x", "y")
    with pytest.raises(StoreError, match="signed_by_id 999 is not a known clinician"):
        store.amend(run, "signed_by_id", 999, "x", "y")
    with pytest.raises(StoreError, match="needs who made it and why"):
        store.amend(run, "medical_necessity", "z", "x", " ")
    assert store.amendments(run) == []


def test_unfinished_sessions_are_listed_by_identity_never_by_label(
    store: Store, context: SessionContext
) -> None:
    mine = record_session(store, replace(context, workstation_id="id-a"), finish=False)
    same_label = record_session(store, replace(context, workstation_id="id-b"), finish=False)
    record_session(store, replace(context, workstation_id="id-a"))  # finished
    legacy = record_session(store, context, finish=False)  # written before identities
    assert store.unfinished("id-a") == [mine]
    assert store.unfinished("id-b") == [same_label]
    assert store.unfinished_unowned(context.workstation) == [legacy]


def test_interrupt_closes_an_unfinished_session_keeping_what_it_recorded(
    store: Store, context: SessionContext
) -> None:
    run = record_session(store, context, samples=30, finish=False)
    row = store.interrupt(run)
    assert row is not None
    assert row.outcome == "interrupted" and row.sample_count == 30
    assert row.last_sample_t == pytest.approx(29 * 0.02)
    assert row.ended_at == row.started_at + timedelta(seconds=29 * 0.02)
    assert store.interrupt(run) is None  # an outcome is never replaced
    done = record_session(store, context)
    assert store.interrupt(done) is None and store.get_session(done).outcome == "completed"


def test_verify_reports_a_sample_altered_with_plain_sql(
    engine: Engine, store: Store, context: SessionContext
) -> None:
    run = record_session(store, context, samples=200)
    digest = seal(store, run)
    assert verify(store, run).ok and verify(store, run).expected == digest
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE samples SET measured_n = measured_n + 0.5 WHERE session_id = :s AND seq = 117"
            ),
            {"s": run},
        )
    report = verify(store, run)
    assert not report.ok
    assert report.expected == digest and report.actual != digest
    assert report.differences == ["samples changed since sealing"]


def test_verify_reports_a_deleted_event_and_a_missing_seal(
    engine: Engine, store: Store, context: SessionContext
) -> None:
    unsealed = record_session(store, context)
    assert verify(store, unsealed).differences == ["the session was never sealed"]
    seal(store, unsealed)
    with pytest.raises(StoreError, match="already sealed"):
        seal(store, unsealed)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM events WHERE session_id = :s"), {"s": unsealed})
    report = verify(store, unsealed)
    assert not report.ok
    assert "events changed since sealing" in report.differences
    assert "event_count: 1 at sealing, 0 now" in report.differences


def test_session_for_an_unknown_patient_is_refused(store: Store, context: SessionContext) -> None:
    bad = SessionContext(4242, context.treating_clinician_id, "ws-test")
    with pytest.raises(StoreError, match="no patient with id 4242"):
        store.create_session(make_started(str(uuid.uuid4())), bad)
