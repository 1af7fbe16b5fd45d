"""The claims ledger on SQLite and PostgreSQL: each encounter billed once, pulled once by cursor,
corrected and voided explicitly, simulated sessions never in it, held lines kept out of claim
files with every finding."""

from __future__ import annotations

import csv
import io
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from billing_records import people, record

from session.billing import BillingLine
from session.exports import (
    CorrectionRefused,
    ExportFormat,
    ExportOptions,
    NothingToBill,
    claim_run,
    correct_line,
    export_to_directory,
    export_to_file,
    preview,
    render,
    void_line,
)
from session.ledger import ClaimsLedger, ClaimStatus, Frequency, LedgerError
from session.store import Store, StoreError

DAY = datetime(2026, 3, 14, 14, 0, tzinfo=UTC)


def lines_in(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_two_same_day_sessions_exported_in_two_runs_bill_one_line_once(
    store: Store, tmp_path: Path
) -> None:
    patient, pt = people(store)
    a = record(store, "run-a", patient, pt, DAY)
    b = record(store, "run-b", patient, pt, DAY + timedelta(hours=2))
    first = export_to_directory(store, [a], [ExportFormat.CSV], tmp_path / "1")
    second = export_to_directory(store, [b], [ExportFormat.CSV], tmp_path / "2")
    [sent] = lines_in(tmp_path / "1" / "billing-lines.csv")
    assert sent["units"] == "1" and sent["frequency"] == "1" and sent["session_ids"] == a
    assert not (tmp_path / "2" / "billing-lines.csv").exists()
    assert [r.status.value for r in second.results] == ["already_sent"]
    original = first.sent[0].claim_line
    assert original is not None
    assert second.results[0].claim_line == original
    # exporting both again bills nothing new either
    again = export_to_directory(store, [a, b], [ExportFormat.CSV], tmp_path / "3")
    assert again.sent == [] and not (tmp_path / "3" / "billing-lines.csv").exists()
    assert [line.id for line in ClaimsLedger(store.engine).lines_after(0)] == [original.id]


def test_pulling_by_cursor_twice_yields_each_line_once(store: Store, tmp_path: Path) -> None:
    ledger = ClaimsLedger(store.engine)
    for n in range(3):
        patient, pt = people(store, f"P-{n}")
        record(store, f"run-{n}", patient, pt, DAY + timedelta(days=n))
    export_to_directory(store, ledger.unclaimed_sessions(), [ExportFormat.CSV], tmp_path / "a")
    assert ledger.unclaimed_sessions() == []
    pulled: list[int] = []
    cursor = 0
    for _ in range(2):  # a page of two, then the rest, then nothing
        page = ledger.lines_after(cursor, limit=2)
        pulled += [line.id or 0 for line in page]
        cursor = page[-1].id or 0 if page else cursor
    assert len(pulled) == 3 and len(set(pulled)) == 3
    assert ledger.lines_after(cursor) == []  # the second pull: nothing new
    with pytest.raises(LedgerError, match="cursor -1"):
        ledger.lines_after(-1)
    with pytest.raises(LedgerError, match="limit 1001"):
        ledger.lines_after(0, limit=1001)


def test_every_export_run_records_who_when_lines_files_and_held(
    store: Store, tmp_path: Path
) -> None:
    patient, pt = people(store)
    ready = record(store, "run-ready", patient, pt, DAY)
    unsigned = record(store, "run-unsigned", patient, pt, DAY + timedelta(days=1), sign=False)
    summary = export_to_directory(
        store, [ready, unsigned], [ExportFormat.CSV], tmp_path, by="biller@ws-1"
    )
    ledger = ClaimsLedger(store.engine)
    assert summary.run_id is not None
    run = ledger.get_run(summary.run_id)
    assert run.by == "biller@ws-1" and run.kind == "export"
    assert datetime.now(UTC) - run.at < timedelta(minutes=5)
    assert set(run.session_ids) == {ready, unsigned}
    assert str(tmp_path / "billing-lines.csv") in run.files
    assert str(tmp_path / "held-lines.csv") in run.files
    assert [h["session_id"] for h in run.held] == [unsigned]
    assert "NO_SIGNATURE" in run.held[0]["codes"]
    assert [line.session_ids for line in ledger.run_lines(summary.run_id)] == [[ready]]


def test_held_lines_never_reach_the_claim_file_and_carry_every_finding(
    store: Store, tmp_path: Path
) -> None:
    patient, pt = people(store, payer="cigna-example")
    unsigned = record(store, "run-held", patient, pt, DAY, sign=False, necessity=None)
    summary = export_to_directory(store, [unsigned], [ExportFormat.CSV, ExportFormat.X12], tmp_path)
    assert summary.sent == [] and len(summary.held) == 1 and summary.anything_held
    assert not (tmp_path / "billing-lines.csv").exists()
    assert not (tmp_path / "claims.837p.txt").exists()
    [held] = lines_in(tmp_path / "held-lines.csv")
    for code in ("NO_SIGNATURE", "NO_MEDICAL_NECESSITY", "PRIOR_CARE_NOT_DOCUMENTED"):
        assert code in held["findings"]
    assert "(warning," in held["findings"] and "(blocking," in held["findings"]
    [doc] = summary.docs
    assert doc.billing is not None and doc.billing.status == "held"
    severities = {f.severity for f in doc.billing.findings}
    assert severities == {"blocking", "warning"}
    assert ClaimsLedger(store.engine).lines_after(0) == []


def test_an_export_with_nothing_to_write_says_why_instead_of_an_empty_file(
    store: Store, tmp_path: Path
) -> None:
    patient, pt = people(store)
    a = record(store, "run-a", patient, pt, DAY)
    b = record(store, "run-b", patient, pt, DAY + timedelta(hours=1))
    export_to_file(store, a, ExportFormat.X12, tmp_path / "a.x12")
    assert (tmp_path / "a.x12").read_text().startswith("ISA*")
    summary = export_to_file(store, b, ExportFormat.X12, tmp_path / "b.x12")
    assert not (tmp_path / "b.x12").exists() and summary.files == []
    assert "already sent as claim line" in summary.notes[b] and a in summary.notes[b]
    doc, rows = preview(store, b)
    with pytest.raises(NothingToBill, match="no claim line to write as x12"):
        render(store, doc, ExportFormat.X12, rows)


def test_a_race_between_two_workstations_bills_the_encounter_once(store: Store) -> None:
    patient, pt = people(store)
    a = record(store, "run-a", patient, pt, DAY)
    b = record(store, "run-b", patient, pt, DAY + timedelta(hours=1))
    run = claim_run(store, [a, b])
    [line] = run.lines
    only_a = BillingLine(**{**line.__dict__, "session_ids": (a,)})
    only_b = BillingLine(**{**line.__dict__, "session_ids": (b,)})
    ledger = ClaimsLedger(store.engine)
    barrier = threading.Barrier(2)
    results: list[ClaimStatus] = []

    def claim(which: BillingLine) -> None:
        run_id = ledger.begin_run("ws", "export", list(which.session_ids))
        barrier.wait(timeout=10)
        results.append(ledger.claim(run_id, which, "medicare").status)

    threads = [threading.Thread(target=claim, args=(x,)) for x in (only_a, only_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive()
    assert sorted(results) == [ClaimStatus.ALREADY_SENT, ClaimStatus.SENT]
    assert len(ledger.lines_after(0)) == 1
    assert ledger.unclaimed_sessions() == []


def test_simulated_sessions_are_documented_but_never_billed_nor_in_the_ledger(
    store: Store, tmp_path: Path
) -> None:
    patient, pt = people(store)
    sim = record(store, "run-sim", patient, pt, DAY, simulated=True)
    scaled = record(store, "run-scaled", patient, pt, DAY + timedelta(days=1), time_scale=20.0)
    assert store.get_session(scaled).simulated  # a scaled clock only ever drives a simulator
    ledger = ClaimsLedger(store.engine)
    assert ledger.unclaimed_sessions() == []  # never offered as new
    formats = [ExportFormat.CSV, ExportFormat.JSON, ExportFormat.FHIR]
    summary = export_to_directory(store, [sim, scaled], formats, tmp_path)
    assert summary.results == [] and summary.simulated == [sim, scaled]
    assert ledger.lines_after(0) == [] and not (tmp_path / "billing-lines.csv").exists()
    for doc in summary.docs:
        assert doc.simulated and doc.billing is not None and doc.billing.status == "simulated"
        assert "SIMULATED" in [f.code for f in doc.billing.findings]
    assert '"simulated": true' in (tmp_path / sim / f"{sim}.json").read_text()
    fhir = (tmp_path / sim / f"{sim}.fhir.json").read_text()
    assert '"not-billable"' in fhir and "simulated" in fhir.lower()
    [line] = claim_run(store, [record(store, "run-real", patient, pt, DAY)]).lines
    forged = BillingLine(**{**line.__dict__, "session_ids": (sim,)})
    run_id = ledger.begin_run("ws", "export", [sim])
    with pytest.raises(LedgerError, match="simulated table"):
        ledger.claim(run_id, forged, "medicare")


def test_a_sent_line_is_corrected_with_frequency_7_and_voided_with_8(
    store: Store, tmp_path: Path
) -> None:
    patient, pt = people(store)
    a = record(store, "run-a", patient, pt, DAY)
    summary = export_to_directory(store, [a], [ExportFormat.CSV], tmp_path)
    original = summary.sent[0].claim_line
    assert original is not None and original.id is not None
    store.amend(a, "diagnosis_codes", ["M54.16", "M51.16"], "clinician 1", "add disc code")
    with pytest.raises(CorrectionRefused, match="NO_SIGNATURE"):  # the amendment reopened it
        correct_line(store, original.id, "added M51.16", "biller")
    store.amend(a, "signed_by_id", pt, "clinician 1", "signed again")
    fixed = correct_line(store, original.id, "added M51.16", "biller")
    assert fixed.frequency == Frequency.REPLACEMENT and fixed.replaces_line_id == original.id
    assert fixed.diagnoses == ["M54.16", "M51.16"] and fixed.units == 1
    with pytest.raises(LedgerError, match=f"replaced by line {fixed.id}"):
        void_line(store, original.id, "wrong line", "biller")
    assert fixed.id is not None
    voided = void_line(store, fixed.id, "patient cancelled", "biller")
    assert voided.frequency == Frequency.VOID and voided.replaces_line_id == fixed.id
    with pytest.raises(LedgerError, match="voided"):
        correct_line(store, fixed.id, "again", "biller")
    pulled = ClaimsLedger(store.engine).lines_after(original.id)
    assert [(x.frequency, x.replaces_line_id) for x in pulled] == [
        ("7", original.id),
        ("8", fixed.id),
    ]
    assert [r.kind for r in ClaimsLedger(store.engine).runs()] == ["void", "correct", "export"]


def test_kx_is_decided_per_patient_at_just_below_at_and_above_the_threshold(store: Store) -> None:
    """2026 threshold $2,480, fee $14.23: KX only when the patient's own spend goes above it."""
    ids = []
    for n in range(4):
        patient, pt = people(store, f"P-{n}")
        ids.append(record(store, f"run-{n}", patient, pt, DAY + timedelta(minutes=n)))
    fee = Decimal("14.23")
    spend_2450 = claim_run(store, ids, ExportOptions(year_to_date_spend=Decimal("2450")))
    assert all("KX" not in line.modifiers for line in spend_2450.lines)  # each at $2,464.23
    for prior, kx in (
        (Decimal("2480") - fee - Decimal("0.01"), False),  # just below
        (Decimal("2480") - fee, False),  # exactly at: KX is for spending *above* the threshold
        (Decimal("2480") - fee + Decimal("0.01"), True),  # just above
    ):
        run = claim_run(store, ids[:1], ExportOptions(year_to_date_spend=prior))
        assert ("KX" in run.lines[0].modifiers) is kx, prior


def test_ledger_spend_carries_kx_across_runs_for_that_patient_only(
    store: Store, tmp_path: Path
) -> None:
    patient, pt = people(store, "P-KX")
    other, _ = people(store, "P-OTHER")
    first = record(store, "run-1", patient, pt, DAY)
    second = record(store, "run-2", patient, pt, DAY + timedelta(days=1))
    theirs = record(store, "run-3", other, pt, DAY + timedelta(days=1))
    options = ExportOptions(year_to_date_spend=Decimal("2460"))  # + 14.23 = 2474.23: no KX
    one = export_to_directory(store, [first], [ExportFormat.CSV], tmp_path / "1", options)
    assert "KX" not in one.sent[0].line.modifiers
    two = export_to_directory(store, [second, theirs], [ExportFormat.CSV], tmp_path / "2", options)
    by_patient = {r.line.patient_ref: r.line.modifiers for r in two.sent}
    assert "KX" in by_patient["P-KX"]  # 2474.23 + 14.23 = 2488.46 > 2480
    assert "KX" not in by_patient["P-OTHER"]


def test_a_blocked_sessions_diagnoses_never_reach_the_billed_line(store: Store) -> None:
    patient, pt = people(store)
    ready = record(store, "run-ready", patient, pt, DAY, diagnoses=("M54.16",))
    blocked = record(
        store,
        "run-blocked",
        patient,
        pt,
        DAY + timedelta(hours=1),
        diagnoses=("J45.909",),
        sign=False,
    )
    run = claim_run(store, [blocked, ready])
    [line] = run.lines
    assert line.session_ids[0] == ready and line.diagnoses == ("M54.16",)
    assert run.line_ready(line)


def test_export_of_one_session_leaves_the_other_session_of_the_day_out(store: Store) -> None:
    patient, pt = people(store)
    a = record(store, "run-a", patient, pt, DAY, diagnoses=("M54.16",))
    record(store, "run-b", patient, pt, DAY + timedelta(hours=1), diagnoses=("M51.16",))
    run = claim_run(store, [a])
    assert [d.session_id for d in run.docs] == [a]
    assert run.lines[0].session_ids == (a,) and run.lines[0].diagnoses == ("M54.16",)


@pytest.mark.parametrize(
    ("abn", "modifier"), [("signed", "GA"), ("not_obtained", "GZ"), ("not_required", "GZ")]
)
def test_a_decompression_table_is_recorded_and_billed_to_medicare_as_the_expected_denial(
    store: Store, tmp_path: Path, abn: str, modifier: str
) -> None:
    patient, pt = people(store)
    sid = record(store, "run-dx", patient, pt, DAY, decompression_table=True, sign=False)
    assert store.get_session(sid).decompression  # from the table's own capability
    store.amend(sid, "abn_status", abn, "clinician 1", "ABN")
    store.amend(sid, "signed_by_id", pt, "clinician 1", "signature")
    summary = export_to_directory(store, [sid], [ExportFormat.JSON], tmp_path)
    [sent] = summary.sent  # non-covered, yet billed: the payer must see the denial
    assert sent.line.cpt_code == "97012" and sent.line.modifiers == ("GP", modifier)
    codes = {f.code: f.severity.value for f in summary.findings}
    assert codes["DECOMPRESSION_NOT_COVERED"] == "warning"


def test_decompression_is_amendable_and_cigna_bills_s9090(store: Store) -> None:
    patient, pt = people(store, payer="cigna-example")
    sid = record(store, "run-s9090", patient, pt, DAY)
    assert not store.get_session(sid).decompression
    store.amend(sid, "decompression", True, "clinician 1", "decompression table")
    with pytest.raises(StoreError, match="true or false"):
        store.amend(sid, "decompression", "yes", "clinician 1", "typo")
    [line] = claim_run(store, [sid]).lines
    assert line.cpt_code == "S9090"


def test_the_runs_837p_file_holds_the_sent_lines_and_pyx12_accepts_it(
    store: Store, tmp_path: Path
) -> None:
    from test_export import pyx12_accepts

    for n in range(2):
        patient, pt = people(store, f"P-X{n}")
        record(store, f"run-x{n}", patient, pt, DAY)
    summary = export_to_directory(
        store, ClaimsLedger(store.engine).unclaimed_sessions(), [ExportFormat.X12], tmp_path
    )
    text = (tmp_path / "claims.837p.txt").read_text()
    ids = [r.claim_line.id for r in summary.sent if r.claim_line]
    assert len(ids) == 2 and all(f"CLM*TRC{i}*14.23***11:B:1*" in text for i in ids)
    valid, ack = pyx12_accepts(text)
    assert valid, ack
