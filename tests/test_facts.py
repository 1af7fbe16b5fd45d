"""Session facts: computed once at sealing, used by claims and documents instead of samples."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from conftest_db import make_started
from sqlalchemy.engine import Engine

from devices.records import Event, EventKind, Finished, Outcome, Phase, Sample
from session import facts
from session.documentation import build_documentation, document_session
from session.exports import ExportFormat, claim_run, export_to_file, render_plot
from session.facts import facts_for
from session.seal import _canonical, _sample_lines, compute_parts, seal, verify
from session.store import NumberedEvent, SessionContext, Store

PROFILE = {"mode": "intermittent", "hold_force_n": 300.0, "rest_force_n": 120.0, "hold_s": 60.0}


def recorded(store: Store, context: SessionContext, samples: int = 600) -> str:
    """A finished, sealed session: hold and rest phases, a pause and a trip."""
    started = make_started()
    started = type(started)(**{**started.__dict__, "profile": PROFILE, "t": 10.0})
    run = started.run_id
    store.create_session(started, context)
    rows = []
    for i in range(samples):
        phase = Phase.PAUSED if 200 <= i < 260 else (Phase.HOLD if (i // 100) % 2 else Phase.REST)
        target = 300.0 if phase == Phase.HOLD else 120.0
        rows.append(
            Sample(run, i, 10.0 + i * 0.02, target, target - 3.0 + (i % 5), phase, i // 200)
        )
    events = [
        NumberedEvent(0, Event(run, 14.0, EventKind.PAUSE, "clinician paused")),
        NumberedEvent(1, Event(run, 15.2, EventKind.RESUME, "resumed")),
        NumberedEvent(2, Event(run, 21.0, EventKind.TRIP, "over force", {"fault": "over_force"})),
    ]
    for first in range(0, samples, 250):
        store.add_batch(run, rows[first : first + 250], events if first == 0 else ())
    store.finish(Finished(run, rows[-1].t, started.wall, Outcome.TRIPPED, "over force", samples))
    seal(store, run)
    return run


def forbid_sample_reads(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> Iterator[Any]:
        raise AssertionError("samples were read")

    monkeypatch.setattr(store, "iter_sample_pages", refuse)
    monkeypatch.setattr(store, "iter_samples", refuse)


def test_sealing_stores_the_facts_the_documentation_would_compute_from_samples(
    store: Store, context: SessionContext
) -> None:
    run = recorded(store, context)
    stored = facts.load(store, [run])[run]
    assert stored.seal_digest == store.get_session(run).seal_digest and stored.seal_verified
    assert (stored.sample_count, stored.event_count) == (600, 3)

    from_facts = build_documentation(store, run)
    row = store.get_session(run)
    snapshot = {**row.settings, "t": row.start_t}
    from_samples = document_session(
        plain_facts(from_facts),
        snapshot,
        store.iter_events(run),
        store.iter_samples(run),
        clinical_of(from_facts),
    )
    assert from_facts.delivered == from_samples.delivered
    assert [o.kind for o in from_facts.delivered.interruptions] == ["pause", "trip"]
    assert from_facts.delivered.interruptions[0].at_s == 4.0


def plain_facts(doc: Any) -> Any:
    from session.documentation import SessionFacts

    return SessionFacts(
        session_id=doc.session_id,
        patient_ref=doc.patient_ref,
        regions=doc.regions,
        started_at=doc.started_at,
        ended_at=doc.ended_at,
        outcome=doc.outcome,
        device=doc.device,
    )


def clinical_of(doc: Any) -> Any:
    from session.documentation import ClinicalRecord

    return ClinicalRecord(treating=doc.treating, position=doc.prescribed.position)


def test_claims_and_billing_formats_never_read_samples(
    store: Store, context: SessionContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    run = recorded(store, context)
    seal_of_before = build_documentation(store, run).seal
    forbid_sample_reads(store, monkeypatch)
    run_ = claim_run(store, [run], verify_seals=False)
    assert run_.docs[0].seal == seal_of_before and run_.docs[0].delivered.sample_count == 600
    summary = export_to_file(store, run, ExportFormat.CSV, tmp_path / "line.csv")
    assert [r.line.session_ids for r in summary.results] == [(run,)]  # billed or held, read-free
    for fmt in (ExportFormat.X12, ExportFormat.FHIR):
        export_to_file(store, run, fmt, tmp_path / f"claim{fmt.suffix}")
    assert render_plot(store, run_.docs[0]).startswith(b"\x89PNG")
    with pytest.raises(AssertionError, match="samples were read"):
        claim_run(store, [run])  # documents (JSON, PDF) verify the seal: that reads samples


def test_a_pdf_export_reads_each_sample_once(
    store: Store, context: SessionContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    run = recorded(store, context)
    reads: list[str] = []
    pages = store.iter_sample_pages

    def counted(session_id: str, batch: int = 5000) -> Iterator[Any]:
        reads.append(session_id)
        return pages(session_id, batch)

    monkeypatch.setattr(store, "iter_sample_pages", counted)
    monkeypatch.setattr(store, "iter_samples", None)  # only the seal's paged pass may read them
    export_to_file(store, run, ExportFormat.PDF, tmp_path / "note.pdf")
    assert reads == [run]
    export_to_file(store, run, ExportFormat.CSV, tmp_path / "line.csv")
    assert reads == [run]


def test_a_verification_that_finds_a_change_blocks_billing_without_rereading(
    engine: Engine, store: Store, context: SessionContext
) -> None:
    run = recorded(store, context)
    assert not _blocking(claim_run(store, [run], verify_seals=False), "SEAL_MISMATCH")
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE samples SET measured_n = 999 WHERE session_id = :s AND seq = 7"),
            {"s": run},
        )
    assert not verify(store, run).ok
    assert facts.load(store, [run])[run].seal_verified  # a plain check writes nothing
    assert not verify(store, run, keep=True).ok
    assert facts.load(store, [run])[run].seal_verified is False
    assert _blocking(claim_run(store, [run], verify_seals=False), "SEAL_MISMATCH")


def _blocking(run: Any, code: str) -> bool:
    return any(f.code == code for f in run.findings)


def test_a_session_sealed_before_facts_existed_gets_them_on_first_use(
    engine: Engine, store: Store, context: SessionContext
) -> None:
    run = recorded(store, context)
    before = build_documentation(store, run)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM session_facts"))
    assert facts.load(store, [run]) == {}
    assert build_documentation(store, run) == before
    again = facts.load(store, [run])[run]
    assert again.seal_verified and again.seal_digest == store.get_session(run).seal_digest


def test_facts_of_a_changed_record_computed_late_say_the_seal_does_not_match(
    engine: Engine, store: Store, context: SessionContext
) -> None:
    run = recorded(store, context)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM session_facts"))
        conn.execute(sa.text("DELETE FROM samples WHERE session_id = :s AND seq = 3"), {"s": run})
    late = facts_for(store, run)
    assert late.sample_count == 599 and late.seal_verified is False


ODD_ROWS = [
    (0, 0.0, -0.0, 1e-05, "hold", 0),
    (12, 1e300, 123456789.123456789, -2.5e-12, "ramp_up", 3),
    (5, math.nan, math.inf, -math.inf, "paused", 1),
    (7, 0.1 + 0.2, 2.0, 3, 'r\u00e9st "quoted"\n', 2**40),
]


@pytest.mark.parametrize("extra", [[], [(8, 1.0, 2.0, 3.0, "odd],[phase", 0)]])
def test_canonical_sample_lines_are_byte_for_byte_the_json_the_seal_always_used(
    extra: list[tuple[Any, ...]],
) -> None:
    page = ODD_ROWS + extra
    expected = b"".join(_canonical(list(row)) + b"\n" for row in page)
    assert _sample_lines(page, set()).encode() == expected


def test_seal_digest_is_unchanged_from_the_per_row_json_it_replaced(
    store: Store, context: SessionContext
) -> None:
    run = recorded(store, context, samples=300)
    by_row = hashlib.sha256()
    for s in store.iter_samples(run):
        by_row.update(_canonical([s.seq, s.t, s.target_n, s.measured_n, s.phase, s.cycle]))
        by_row.update(b"\n")
    assert compute_parts(store, run)["samples"] == by_row.hexdigest()


def test_stored_plot_keeps_a_one_sample_peak(store: Store, context: SessionContext) -> None:
    run = recorded(store, context)
    buckets = facts_for(store, run).plot_buckets()
    assert max(b.hi for b in buckets) == max(s.measured_n for s in store.iter_samples(run))
    assert len(buckets) <= facts.PLOT_BUCKETS
