"""Assistants: a PTA's or OTA's session is supervised, co-signed by that therapist, billed under
the therapist with CQ/CO; co-signing is a second, distinct signature by the signed-in therapist."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from api_support import make_world, running_client
from billing_records import record
from cli_support import cli, sign_in
from conftest_db import make_started
from documentation_factory import PT, SUPERVISOR, make_doc

from session.billing import Severity, billing_lines, check_readiness, default_payers
from session.db import make_engine, upgrade
from session.documentation import Clinician, Discipline, PlanOfCare, Signature
from session.errors import StoreError
from session.store import SessionContext, Store
from traction.exitcodes import Exit

PTA = Clinician(name="Ana Ruiz", credentials="PTA", discipline=Discipline.PTA, npi="1710000006")
OTA = Clinician(name="Ola Berg", credentials="COTA", discipline=Discipline.OTA, npi="1720000005")
OT = Clinician(name="Otto Lind", credentials="OTR/L", discipline=Discipline.OT, npi="1730000004")
SIGNED = datetime(2025, 3, 14, 15, 0, tzinfo=UTC)
MEDICARE = default_payers()["medicare"]
COMMERCIAL = default_payers()["cigna-example"]


def _signature(who: Clinician) -> Signature:
    return Signature(name=who.name, credentials=who.credentials, signed_at=SIGNED)


def assistant_doc(**overrides: object) -> object:
    base = {
        "treating": PTA,
        "supervising": SUPERVISOR,
        "signature": _signature(PTA),
        "cosignature": _signature(SUPERVISOR),
    }
    base.update(overrides)
    return make_doc(**base)


def codes(findings: list, severity: Severity | None = None) -> set[str]:
    return {f.code for f in findings if severity is None or f.severity is severity}


def test_a_cosigned_pta_session_bills_gp_cq_under_the_supervising_pt() -> None:
    doc = assistant_doc()
    findings = check_readiness([doc], MEDICARE)
    assert not codes(findings, Severity.BLOCKING), findings
    assert "ASSISTANT_PAYMENT" in codes(findings, Severity.INFO)
    [line] = billing_lines([doc], MEDICARE)
    assert line.modifiers[:2] == ("GP", "CQ")
    assert line.rendering_npi == SUPERVISOR.npi and line.supervising_npi == SUPERVISOR.npi


def test_an_ota_session_bills_go_co_under_an_ot_plan() -> None:
    doc = assistant_doc(
        treating=OTA,
        supervising=OT,
        signature=_signature(OTA),
        cosignature=_signature(OT),
        plan_of_care=PlanOfCare(reference="POC-9", discipline=Discipline.OT, goals="dress"),
    )
    assert not codes(check_readiness([doc], MEDICARE), Severity.BLOCKING)
    [line] = billing_lines([doc], MEDICARE)
    assert line.modifiers[:2] == ("GO", "CO") and line.rendering_npi == OT.npi


def test_a_therapists_own_session_has_no_assistant_modifier() -> None:
    [line] = billing_lines([make_doc()], MEDICARE)
    assert "CQ" not in line.modifiers and line.rendering_npi == PT.npi


def test_an_assistant_session_waits_for_the_cosignature() -> None:
    findings = check_readiness([assistant_doc(cosignature=None)], MEDICARE)
    assert "ASSISTANT_NOT_COSIGNED" in codes(findings, Severity.BLOCKING)


@pytest.mark.parametrize(
    "supervisor",
    [None, OT, Clinician(name="Sam", credentials="PTA", discipline=Discipline.PTA, npi=None)],
)
def test_an_assistant_session_needs_a_supervising_therapist_of_its_discipline(
    supervisor: Clinician | None,
) -> None:
    findings = check_readiness([assistant_doc(supervising=supervisor)], MEDICARE)
    assert "ASSISTANT_NO_SUPERVISOR" in codes(findings, Severity.BLOCKING)


def test_a_payer_without_cq_co_gets_none_but_still_needs_the_cosignature() -> None:
    [line] = billing_lines([assistant_doc()], COMMERCIAL)
    assert "CQ" not in line.modifiers and line.modifiers[0] == "GP"
    findings = check_readiness([assistant_doc(cosignature=None)], COMMERCIAL)
    assert "ASSISTANT_NOT_COSIGNED" in codes(findings, Severity.BLOCKING)
    assert "ASSISTANT_PAYMENT" not in codes(check_readiness([assistant_doc()], COMMERCIAL))


# --- co-signing in the store ---------------------------------------------------------------------


@pytest.fixture
def clinic(store: Store) -> dict[str, int]:
    patient = store.add_patient("P-1", 80.0, payer_id="medicare")
    ids = {"patient": patient.id or 0}
    for key, (name, creds, discipline, npi) in {
        "pta": ("Ana Ruiz", "PTA", Discipline.PTA, "1710000006"),
        "pt": ("Lee Park", "PT, DPT", Discipline.PT, "1987654320"),
        "pt2": ("Kim Tan", "PT", Discipline.PT, "1740000003"),
        "ot": ("Otto Lind", "OTR/L", Discipline.OT, "1730000004"),
    }.items():
        ids[key] = store.add_clinician(name, creds, discipline, npi=npi).id or 0
    return ids


def _assistant_session(store: Store, ids: dict[str, int]) -> str:
    sid = record(
        store, "run-pta", ids["patient"], ids["pta"], datetime(2026, 3, 14, 14, tzinfo=UTC)
    )
    store.amend(sid, "supervising_clinician_id", ids["pt"], "admin", "supervised by Lee")
    store.amend(sid, "signed_by_id", ids["pta"], "ana", "signature")
    return sid


def test_the_supervising_therapist_cosigns_an_assistants_signed_note(
    store: Store, clinic: dict[str, int]
) -> None:
    sid = _assistant_session(store, clinic)
    store.amend(sid, "cosigned_by_id", clinic["pt"], "lee", "co-signature")
    row = store.get_session(sid)
    assert row.cosigned_by_id == clinic["pt"] and row.cosigned_at is not None
    assert row.signed_at is not None and row.cosigned_at >= row.signed_at


@pytest.mark.parametrize(
    ("who", "words"),
    [
        ("pta", "the co-signature must be another person's"),
        ("pt2", "only the supervising therapist recorded on the session co-signs"),
    ],
)
def test_a_cosignature_by_anyone_but_the_supervising_therapist_is_refused(
    store: Store, clinic: dict[str, int], who: str, words: str
) -> None:
    sid = _assistant_session(store, clinic)
    with pytest.raises(StoreError, match=words):
        store.amend(sid, "cosigned_by_id", clinic[who], "x", "co-signature")
    assert store.get_session(sid).cosigned_by_id is None


def test_a_supervisor_of_another_discipline_cannot_cosign(
    store: Store, clinic: dict[str, int]
) -> None:
    sid = _assistant_session(store, clinic)
    store.amend(sid, "supervising_clinician_id", clinic["ot"], "admin", "wrong supervisor")
    store.amend(sid, "signed_by_id", clinic["pta"], "ana", "signature again")
    with pytest.raises(StoreError, match="co-signed by a PT"):
        store.amend(sid, "cosigned_by_id", clinic["ot"], "otto", "co-signature")


def test_cosigning_needs_a_signed_assistant_note(store: Store, clinic: dict[str, int]) -> None:
    sid = record(
        store,
        "run-x",
        clinic["patient"],
        clinic["pta"],
        datetime(2026, 3, 15, tzinfo=UTC),
        sign=False,
    )
    store.amend(sid, "supervising_clinician_id", clinic["pt"], "admin", "supervised")
    with pytest.raises(StoreError, match="signed before it is co-signed"):
        store.amend(sid, "cosigned_by_id", clinic["pt"], "lee", "co-signature")
    own = record(
        store, "run-pt", clinic["patient"], clinic["pt"], datetime(2026, 3, 16, tzinfo=UTC)
    )
    with pytest.raises(StoreError, match="not an assistant"):
        store.amend(own, "cosigned_by_id", clinic["pt2"], "kim", "co-signature")


def test_amending_a_cosigned_note_withdraws_both_signatures(
    store: Store, clinic: dict[str, int]
) -> None:
    sid = _assistant_session(store, clinic)
    store.amend(sid, "cosigned_by_id", clinic["pt"], "lee", "co-signature")
    store.amend(sid, "patient_response", "Leg pain eased.", "ana", "addendum")
    row = store.get_session(sid)
    assert row.signed_by_id is None and row.cosigned_by_id is None and row.cosigned_at is None
    withdrawn = [a for a in store.amendments(sid) if a.field_name == "cosigned_by_id"]
    assert withdrawn[-1].new_value is None and "withdrawn" in withdrawn[-1].why


# --- the command line ------------------------------------------------------------------------------


@pytest.mark.backend("sqlite")
def test_cli_a_pta_treats_signs_and_the_supervising_pt_cosigns(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRACTION_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")
    engine = make_engine(db_url)
    upgrade(engine)
    store = Store(engine)
    code, out = cli(
        "clinicians",
        "add",
        "Ana Ruiz",
        "--credentials",
        "PTA",
        "--discipline",
        "PTA",
        "--npi",
        "1710000006",
    )
    assert code == 0, out
    code, out = cli(
        "clinicians",
        "add",
        "Lee Park",
        "--credentials",
        "PT, DPT",
        "--discipline",
        "PT",
        "--npi",
        "1987654320",
    )
    assert code == 0, out
    patient = store.add_patient("P-1", 80.0, payer_id="medicare")
    sid = record(
        store, "run-cli", patient.id or 0, 1, datetime(2026, 3, 14, 14, tzinfo=UTC), sign=False
    )
    store.amend(sid, "supervising_clinician_id", 2, "admin", "supervised by Lee")
    sign_in("ana", clinician=1)
    assert cli("sessions", "sign", sid)[0] == 0
    code, out = cli("sessions", "cosign", sid)
    assert code == Exit.USAGE and "another person's" in out
    code, out = cli("export", sid, "-f", "json", "--out", str(tmp_path / "held"))
    assert code == Exit.HELD and "ASSISTANT_NOT_COSIGNED" in out
    sign_in("lee", clinician=2)
    code, out = cli("sessions", "cosign", sid)
    assert code == 0 and "co-signed by lee" in out, out
    code, out = cli("export", sid, "-f", "json", "--out", str(tmp_path / "ready"))
    assert code == 0 and "ASSISTANT_PAYMENT" in out, out
    engine.dispose()


def test_api_nobody_signs_or_cosigns_as_another_clinician(tmp_path: Path, db_url: str) -> None:
    world = make_world(tmp_path, db_url)
    patient = world.store.patient_by_reference(world.patient_ref)
    other = world.store.add_clinician("Lee Park", "PT", Discipline.PT, npi="1987654320")
    context = SessionContext(patient.id or 0, world.clinician_id, "ws", ("lumbar",))
    sid = world.store.create_session(make_started(), context).id
    for client in running_client(world):
        for field in ("signed_by_id", "cosigned_by_id"):
            refused = client.post(
                f"/sessions/{sid}/amendments",
                json={"field": field, "value": other.id, "why": "signature"},
                headers=world.headers("clinician"),
            )
            assert refused.status_code == 403, refused.text
            assert "only as their own clinician" in refused.json()["detail"]
    assert world.store.amendments(sid) == []
    world.close()
