"""Renderers: JSON against its schema, CSV round trip, PDF with its plot, FHIR agreement and code
checks, the 837P fragment, and a session recorded through the real store then exported."""

from __future__ import annotations

import copy
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest
from documentation_factory import HOLD_N, PT, SUPERVISOR, intermittent_samples, make_doc, trip_event
from fhir.resources.R4B.bundle import Bundle
from pypdf import PdfReader

from devices.errors import ConfigError
from devices.records import Event, EventKind, Finished, Outcome, Phase, Sample, Started
from devices.units import ForceUnit
from session.billing import BillingLine, Severity, billing_lines, check_readiness, default_payers
from session.documentation import Region, build_documentation
from session.export import csv_lines, fhir_bundle, json_doc, pdf_note, x12_837p
from session.models import AbnStatus, Discipline
from session.seal import seal
from session.store import NumberedEvent, SessionContext, Store

MEDICARE = default_payers()["medicare"]


def tripped_doc():  # type: ignore[no-untyped-def]
    return make_doc(events=(trip_event(),), outcome=Outcome.TRIPPED)


# --- JSON ------------------------------------------------------------------------------------


def test_json_validates_against_the_published_schema() -> None:
    data = json.loads(json_doc.render_json(tripped_doc()))
    schema = json_doc.published_schema()
    jsonschema.validate(data, schema)
    assert data["schema_version"] == "2" and data["cpt_code"] == "97012"
    assert data["delivered"]["force_unit"] == "lbf"
    assert data["delivered"]["interruptions"][0]["kind"] == "trip"
    broken = copy.deepcopy(data)
    del broken["patient_ref"]
    with pytest.raises(jsonschema.ValidationError, match="patient_ref"):
        jsonschema.validate(broken, schema)
    broken = copy.deepcopy(data)
    broken["delivered"]["force_unit"] = "stone"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_published_schema_is_the_models_schema() -> None:
    """A model change that alters the schema must come with a new schema file (and version)."""
    assert json_doc.published_schema() == json_doc.schema()


# --- CSV -------------------------------------------------------------------------------------


def test_csv_round_trips_with_dictreader() -> None:
    docs = [make_doc("s1"), make_doc("s2", patient_ref="P-200", abn=AbnStatus.SIGNED)]
    lines = billing_lines(docs, MEDICARE, Decimal("2400"))
    text = csv_lines.render_csv(lines)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == csv_lines.COLUMNS
    assert [r["patient_ref"] for r in rows] == ["P-100", "P-200"]
    assert rows[1]["mod1"] == "GP" and rows[1]["mod2"] == "KX" and rows[1]["mod3"] == "GA"
    assert rows[0]["charge"] == "14.23" and rows[0]["units"] == "1"
    assert rows[0]["dx_pointer1"] == "1" and rows[0]["dx_pointer3"] == ""
    assert csv_lines.parse_csv(text) == lines


# --- PDF -------------------------------------------------------------------------------------


def test_plot_reduction_keeps_a_one_sample_peak() -> None:
    buckets = pdf_note.reduce_for_plot(intermittent_samples(), 100.0, 960.0, buckets=50)
    assert len(buckets) == 50
    assert max(b.hi for b in buckets) == pytest.approx(HOLD_N + 12.0)


def test_pdf_note_opens_with_its_elements_and_the_plot(tmp_path: Path) -> None:
    out = tmp_path / "note.pdf"
    pdf_note.render_pdf(tripped_doc(), intermittent_samples(), out)
    reader = PdfReader(out)
    assert len(reader.pages) in (1, 2)
    text = " ".join(page.extract_text() for page in reader.pages)
    for expected in (
        "CPT 97012",
        "2025-03-14",
        "TT-500, serial SN-0042",
        "hold 40 lbf for 60 s",
        "M54.16",
        "Dana Reyes",
        "trip: over-force",
        "Figure: force against time",
    ):
        assert expected in text, expected
    images = [img for page in reader.pages for img in page.images]
    assert len(images) == 1 and images[0].image is not None
    width, height = images[0].image.size
    assert width > 800 and height > 300
    (tmp_path / "plot.png").write_bytes(images[0].data)


def test_pdf_without_samples_says_so(tmp_path: Path) -> None:
    out = tmp_path / "empty.pdf"
    pdf_note.render_pdf(make_doc(), [], out)
    assert "No samples were recorded" in PdfReader(out).pages[0].extract_text()


# --- FHIR ------------------------------------------------------------------------------------


def resources(bundle: dict) -> dict[str, list[dict]]:  # type: ignore[type-arg]
    out: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for entry in bundle["entry"]:
        out.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    return out


def test_fhir_bundle_validates_and_its_resources_agree() -> None:
    doc = make_doc(regions=(Region.CERVICAL, Region.LUMBAR), diagnoses=("M54.12", "M54.16"))
    (line,) = billing_lines([doc], MEDICARE)
    bundle = fhir_bundle.render_fhir(doc, line)
    Bundle.model_validate(bundle)
    r = resources(bundle)
    (procedure,) = r["Procedure"]
    (charge,) = r["ChargeItem"]
    (device,) = r["Device"]
    observations = r["Observation"]
    cpt = ("http://www.ama-assn.org/go/cpt", "97012")
    assert (procedure["code"]["coding"][0]["system"], procedure["code"]["coding"][0]["code"]) == cpt
    assert (charge["code"]["coding"][0]["system"], charge["code"]["coding"][0]["code"]) == cpt
    assert len(charge["code"]["coding"]) == 1  # GP is never an alternative coding of 97012
    assert charge["status"] == "billable" and charge["quantity"]["value"] == line.units == 1
    start = doc.started_at.isoformat()
    assert procedure["performedPeriod"]["start"] == charge["occurrencePeriod"]["start"] == start
    assert {o["effectivePeriod"]["start"] for o in observations} == {start}
    assert {o["valueQuantity"]["code"] for o in observations} == {"[lbf_av]"}
    assert {o["valueQuantity"]["unit"] for o in observations} == {doc.delivered.force_unit.value}
    peak = next(o for o in observations if o["id"].endswith("-peak"))
    assert peak["valueQuantity"]["value"] == doc.delivered.peak_hold_force
    assert [s["coding"][0]["code"] for s in procedure["bodySite"]] == ["122494005", "122496007"]
    assert [c["coding"][0]["code"] for c in procedure["reasonCode"]] == ["M54.12", "M54.16"]
    assert procedure["usedReference"][0]["reference"] == f"Device/{device['id']}"
    assert device["serialNumber"] == "SN-0042" and device["modelNumber"] == "TT-500"


def test_fhir_claim_item_carries_97012_with_its_modifiers() -> None:
    from fhir.resources.R4B.claim import Claim

    doc = make_doc()
    (line,) = billing_lines([doc], MEDICARE, year_to_date_spend=Decimal("2500"))
    assert line.modifiers == ("GP", "KX")
    (claim,) = resources(fhir_bundle.render_fhir(doc, line))["Claim"]
    parsed = Claim.model_validate(claim)  # fhir.resources R4B parses it
    [item] = parsed.item
    [product] = item.productOrService.coding
    assert (product.system, product.code) == (fhir_bundle.CPT, "97012")
    assert [(m.coding[0].system, m.coding[0].code) for m in item.modifier] == [
        (fhir_bundle.HCPCS, "GP"),
        (fhir_bundle.HCPCS, "KX"),
    ]
    assert float(item.quantity.value) == 1 and str(item.servicedDate) == "2025-03-14"
    assert [d.diagnosisCodeableConcept.coding[0].code for d in parsed.diagnosis] == list(
        line.diagnoses
    )
    broken = fhir_bundle.build_bundle(doc, line)
    charge = next(
        e["resource"] for e in broken["entry"] if e["resource"]["resourceType"] == "ChargeItem"
    )
    charge["code"]["coding"].append({"system": fhir_bundle.HCPCS, "code": "GP"})
    with pytest.raises(fhir_bundle.FhirCodeError, match="exactly one code"):
        fhir_bundle.validate_bundle(broken)


def test_fhir_in_newtons_uses_ucum_n() -> None:
    doc = make_doc()
    newtons = doc.model_copy(
        update={"delivered": doc.delivered.model_copy(update={"force_unit": ForceUnit.N})}
    )
    obs = resources(fhir_bundle.render_fhir(newtons))["Observation"]
    assert {o["valueQuantity"]["code"] for o in obs} == {"N"}


def test_documented_only_session_gets_a_not_billable_charge() -> None:
    (charge,) = resources(fhir_bundle.render_fhir(make_doc()))["ChargeItem"]
    assert charge["status"] == "not-billable"


def test_bogus_status_passes_fhir_resources_but_not_the_projects_check() -> None:
    bundle = fhir_bundle.build_bundle(make_doc())
    bundle["entry"][0]["resource"]["status"] = "bogus"
    Bundle.model_validate(bundle)  # the library does not check code values
    with pytest.raises(fhir_bundle.FhirCodeError, match="Procedure/s1.status 'bogus'"):
        fhir_bundle.validate_bundle(bundle)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("ChargeItem", "status"), "paid", "ChargeItem/s1-charge.status"),
        (("ChargeItem", "quantity"), {"value": 2}, "quantity must be 1"),
        (
            ("Procedure", "code"),
            {"coding": [{"system": "urn:x", "code": "97012"}]},
            "must be exactly one code",
        ),
        (
            ("Observation", "valueQuantity"),
            {"value": 1, "system": "http://unitsofmeasure.org", "code": "lb"},
            "UCUM force",
        ),
    ],
)
def test_projects_check_catches_bad_codes(
    path: tuple[str, str], value: object, message: str
) -> None:
    bundle = fhir_bundle.build_bundle(make_doc())
    target = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == path[0]
    )
    target[path[1]] = value
    assert any(message in p for p in fhir_bundle.check_codes(bundle))


# --- X12 -------------------------------------------------------------------------------------


def x12_claims(lines: list[BillingLine]) -> list[x12_837p.Claim]:
    return [
        x12_837p.Claim(
            claim_id=f"TRC{n}",
            frequency="1",
            payer_key="medicare",
            line=line,
            rendering=x12_837p.Provider(PT.name, PT.npi or ""),
            supervising=x12_837p.Provider(SUPERVISOR.name, SUPERVISOR.npi or ""),
        )
        for n, line in enumerate(lines, start=1)
    ]


def pyx12_accepts(text: str) -> tuple[bool, str]:
    """Validate with pyx12 (the 005010X222A1 maps); returns (valid, its 999 acknowledgment)."""
    import pyx12.params
    import pyx12.x12n_document

    ack, html = io.StringIO(), io.StringIO()
    valid = pyx12.x12n_document.x12n_document(
        pyx12.params.params(), io.StringIO(text), ack, html, None
    )
    return bool(valid), ack.getvalue()


NOW = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


def test_x12_is_a_complete_837p_interchange_pyx12_accepts() -> None:
    first = make_doc("s1")
    second = make_doc(
        "s2", start=datetime(2025, 3, 17, 9, 0, tzinfo=UTC), diagnoses=("M51.16", "M54.17")
    )
    lines = billing_lines([first, second], MEDICARE)
    text = x12_837p.render_interchange(x12_claims(lines), x12_837p.clinic_identity(), 7, NOW)
    segments = text.splitlines()
    assert segments[0].startswith("ISA*00*") and segments[-1] == "IEA*1*000000007~"
    assert segments[1].startswith("GS*HC*") and segments[-2] == "GE*1*7~"
    assert "NM1*85*2*EXAMPLE PHYSICAL THERAPY*****XX*1245319599~" in segments  # billing
    assert "NM1*82*1*Reyes*Dana****XX*1234567893~" in segments  # rendering
    assert "NM1*DQ*1*Park*Lee****XX*1987654320~" in segments  # supervising
    assert "CLM*TRC1*14.23***11:B:1*Y*A*Y*Y~" in segments
    assert "SV1*HC:97012:GP*14.23*UN*1***1:2~" in segments
    assert "HI*ABK:M5116*ABF:M5417~" in segments
    valid, ack = pyx12_accepts(text)
    assert valid and "IK5*A" in ack and "AK9*A" in ack, ack


def test_pyx12_rejects_a_broken_interchange() -> None:
    """The validator is not a rubber stamp: a wrong segment count fails it."""
    text = x12_837p.render_interchange(
        x12_claims(billing_lines([make_doc("s1")], MEDICARE)), x12_837p.clinic_identity(), 7, NOW
    )
    broken = "\n".join("SE*99*0001~" if seg.startswith("SE*") else seg for seg in text.splitlines())
    valid, _ = pyx12_accepts(broken)
    assert not valid


def test_x12_replacement_names_the_claim_it_replaces() -> None:
    [line] = billing_lines([make_doc("s1")], MEDICARE)
    claim = x12_837p.Claim("TRC2", "7", "medicare", line, None, None, replaces_claim_id="TRC1")
    text = x12_837p.render_interchange([claim], x12_837p.clinic_identity(), 8, NOW)
    assert "CLM*TRC2*14.23***11:B:7*Y*A*Y*Y~" in text and "REF*F8*TRC1~" in text
    assert pyx12_accepts(text)[0]


def test_x12_refuses_an_unknown_payer_and_no_claims() -> None:
    [line] = billing_lines([make_doc("s1")], MEDICARE)
    claim = x12_837p.Claim("TRC1", "1", "acme", line, None, None)
    with pytest.raises(ConfigError, match=r"\[payers.acme\]"):
        x12_837p.render_interchange([claim], x12_837p.clinic_identity(), 1, NOW)
    with pytest.raises(ConfigError, match="no claims"):
        x12_837p.render_interchange([], x12_837p.clinic_identity(), 1, NOW)


@pytest.mark.parametrize(
    ("npi", "ok"), [("123456789", False), ("1234567890", True), ("12345678901", False)]
)
def test_clinic_billing_npi_must_be_ten_digits(npi: str, ok: bool) -> None:
    text = (
        x12_837p.config_file("clinic.toml")
        .read_text(encoding="utf-8")
        .replace('npi = "1245319599"', f'npi = "{npi}"')
    )
    if ok:
        assert x12_837p.load_clinic(text, "clinic.toml").billing.npi == npi
    else:
        with pytest.raises(ConfigError, match="billing.npi"):
            x12_837p.load_clinic(text, "clinic.toml")


# --- from the real store ---------------------------------------------------------------------


def test_session_recorded_through_the_store_is_documented_and_exported(
    tmp_path: Path, store: Store
) -> None:
    patient = store.add_patient("P-900", 80.0, payer_id="medicare")
    pt = store.add_clinician("Dana Reyes", "PT, DPT", Discipline.PT, npi="1234567893")
    wall = datetime(2025, 3, 14, 14, 0, tzinfo=UTC)
    started = Started(
        run_id="run-1",
        t=100.0,
        wall=wall,
        table="lumbar-1",
        device={
            "manufacturer": "Acme",
            "model": "TT-500",
            "serial_number": "SN-9",
            "firmware": "2.3",
        },
        profile={
            "mode": "intermittent",
            "hold_force_n": HOLD_N,
            "rest_force_n": HOLD_N / 2,
            "hold_s": 60,
            "rest_s": 20,
            "duration_s": 960,
        },
        limits={},
        tick_hz=2.0,
        time_scale=1.0,
    )
    assert patient.id is not None and pt.id is not None
    store.create_session(
        started,
        SessionContext(
            patient_id=patient.id,
            treating_clinician_id=pt.id,
            workstation="ws",
            regions=("lumbar",),
            diagnosis_codes=("M54.16",),
            medical_necessity="Radiculopathy limits sitting; traction to progress exercise.",
            plan_of_care_ref="POC-1",
            patient_position="supine",
            pull_angle_deg=10.0,
        ),
    )
    samples = [
        Sample("run-1", s.seq, s.t, s.target_n, s.measured_n, Phase(s.phase))
        for s in intermittent_samples("run-1")
    ]
    events = [NumberedEvent(0, Event("run-1", 400.0, EventKind.PAUSE, "clinician paused"))]
    for i in range(0, len(samples), 500):
        store.add_batch("run-1", samples[i : i + 500], events if i == 0 else ())
    store.finish(
        Finished(
            "run-1",
            samples[-1].t,
            wall + timedelta(minutes=16),
            Outcome.COMPLETED,
            "done",
            len(samples),
        )
    )
    seal(store, "run-1")
    store.amend("run-1", "patient_response", "Tolerated well.", "Dana Reyes", "completed note")
    store.amend("run-1", "signed_by_id", pt.id, "Dana Reyes", "signed")

    doc = build_documentation(store, "run-1")
    assert doc.patient_ref == "P-900" and doc.payer == "medicare"
    assert doc.device.serial == "SN-9" and doc.prescribed.hold_force == 40.0
    assert doc.prescribed.position == "supine" and doc.prescribed.angle_deg == 10.0
    assert doc.delivered.sample_count == len(samples) and doc.delivered.cycles == 12
    assert (
        doc.delivered.interruptions[0].kind == "pause"
        and doc.delivered.interruptions[0].at_s == 300.0
    )
    assert doc.signature is not None and doc.signature.name == "Dana Reyes"
    assert doc.seal is not None and doc.seal.verified
    assert [a.field for a in doc.amendments] == ["patient_response", "signed_by_id"]
    findings = check_readiness([doc], MEDICARE)
    assert not [f for f in findings if f.severity == Severity.BLOCKING], findings

    lines = billing_lines([doc], MEDICARE)
    jsonschema.validate(json.loads(json_doc.render_json(doc)), json_doc.published_schema())
    assert csv_lines.parse_csv(csv_lines.render_csv(lines)) == lines
    fhir_bundle.render_fhir(doc, lines[0])
    text = x12_837p.render_interchange(x12_claims(lines), x12_837p.clinic_identity(), 1, NOW)
    assert "SV1*HC:97012:GP" in text and pyx12_accepts(text)[0]
    pdf_note.render_pdf(doc, store.iter_samples("run-1"), tmp_path / "n.pdf", t0=started.t)
    assert "SN-9" in PdfReader(tmp_path / "n.pdf").pages[0].extract_text()
