"""The documentation as a FHIR R4B collection Bundle: Procedure, Device, force Observations, a
ChargeItem and, for a billed session, a Claim whose item carries the code and its modifiers.

``fhir.resources.R4B`` checks structure (required and unknown fields, types) but not code values: a
Procedure with ``status="bogus"`` passes it. :func:`check_codes` is this project's check of the
statuses, code systems and codes it relies on; :func:`render_fhir` runs both.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.bundle import Bundle

from devices.errors import ConfigError
from session.billing import BillingLine
from session.documentation import CPT_TRACTION, Documentation, Region
from session.icd10 import CodeStatus, default_catalog, is_well_formed

CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
UCUM = "http://unitsofmeasure.org"
NPI = "http://hl7.org/fhir/sid/us-npi"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
PATIENT_REF_SYSTEM = "urn:traction:patient-ref"
MEASURES = "urn:traction:measure"
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
PRIORITY = "http://terminology.hl7.org/CodeSystem/processpriority"
PLACE_OF_SERVICE = (
    "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
)
SIMULATED_TAG = {
    "system": "urn:traction:flag",
    "code": "simulated",
    "display": "Simulated session: a rehearsal, never billed",
}
BODY_SITES = {
    Region.CERVICAL: ("122494005", "Cervical spine"),
    Region.LUMBAR: ("122496007", "Lumbar spine"),
}
UCUM_FORCE = {"lbf": "[lbf_av]", "N": "N", "kgf": "kgf"}

PROCEDURE_STATUS = {
    "preparation",
    "in-progress",
    "not-done",
    "on-hold",
    "stopped",
    "completed",
    "entered-in-error",
    "unknown",
}
OBSERVATION_STATUS = {
    "registered",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "cancelled",
    "entered-in-error",
    "unknown",
}
CHARGE_STATUS = {
    "planned",
    "billable",
    "not-billable",
    "aborted",
    "billed",
    "entered-in-error",
    "unknown",
}
DEVICE_STATUS = {"active", "inactive", "entered-in-error", "unknown"}
MODIFIERS = {"GP", "GO", "GN", "KX", "GA", "GZ", "GY", "59", "XE", "XS", "XP", "XU"}


class FhirCodeError(ConfigError):
    """The bundle is well-formed FHIR but carries a status, system or code this product forbids."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("fhir bundle", "; ".join(problems))


def _period(doc: Documentation) -> dict[str, str]:
    period = {"start": doc.started_at.isoformat()}
    if doc.ended_at:
        period["end"] = doc.ended_at.isoformat()
    return period


def _subject(doc: Documentation) -> dict[str, Any]:
    return {"identifier": {"system": PATIENT_REF_SYSTEM, "value": doc.patient_ref}}


def _practitioner(name: str, npi: str | None) -> dict[str, Any]:
    ref: dict[str, Any] = {"display": name}
    if npi:
        ref["identifier"] = {"system": NPI, "value": npi}
    return ref


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": UCUM_FORCE[unit]}


def _force_observation(
    doc: Documentation, key: str, code: str, display: str, value: float
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"{doc.session_id}-{key}",
        "status": "final",
        "category": [{"coding": [{"system": OBS_CATEGORY, "code": "procedure"}]}],
        "code": {
            "coding": [{"system": MEASURES, "code": code, "display": display}],
            "text": display,
        },
        "subject": _subject(doc),
        "partOf": [{"reference": f"Procedure/{doc.session_id}"}],
        "effectivePeriod": _period(doc),
        "device": {"reference": f"Device/{doc.session_id}-device"},
        "valueQuantity": _quantity(value, doc.delivered.force_unit.value),
    }


def build_bundle(doc: Documentation, line: BillingLine | None = None) -> dict[str, Any]:
    """The bundle as a plain dict. ``line`` is the billing line that bills this session, or None when
    the session is documented only (the ChargeItem is then ``not-billable``)."""
    sid = doc.session_id
    catalog = default_catalog()
    reasons = [
        {"coding": [{"system": ICD10CM, "code": check.code, "display": check.title or check.code}]}
        for check in (catalog.check(c, doc.date_of_service) for c in doc.diagnoses)
        if check.status in (CodeStatus.BILLABLE, CodeStatus.UNVERIFIED, CodeStatus.NOT_SPINE)
    ]
    performers = [{"actor": _practitioner(doc.treating.name, doc.treating.npi)}]
    if doc.supervising:
        performers.append(
            {
                "function": {"text": "supervising"},
                "actor": _practitioner(doc.supervising.name, doc.supervising.npi),
            }
        )
    procedure: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": sid,
        "status": "completed" if doc.outcome == "completed" else "stopped",
        "code": {
            "coding": [{"system": CPT, "code": CPT_TRACTION, "display": "Mechanical traction"}],
            "text": f"Mechanical traction, {doc.traction_type.value}",
        },
        "subject": _subject(doc),
        "performedPeriod": _period(doc),
        "performer": performers,
        "bodySite": [
            {"coding": [{"system": SNOMED, "code": BODY_SITES[r][0], "display": BODY_SITES[r][1]}]}
            for r in doc.regions
        ],
        "usedReference": [{"reference": f"Device/{sid}-device"}],
        "note": [
            {"text": t}
            for t in (
                "SIMULATED session on a simulated table: never billed" if doc.simulated else None,
                doc.medical_necessity,
                doc.patient_response,
            )
            if t
        ],
    }
    if reasons:
        procedure["reasonCode"] = reasons
    if doc.outcome != "completed":
        procedure["statusReason"] = {"text": doc.outcome_reason or doc.outcome.value}
    device = {
        "resourceType": "Device",
        "id": f"{sid}-device",
        "status": "active",
        "manufacturer": doc.device.manufacturer or None,
        "modelNumber": doc.device.model,
        "serialNumber": doc.device.serial,
        "deviceName": [
            {"name": doc.device.table or doc.device.model, "type": "user-friendly-name"}
        ],
        "version": [{"value": doc.device.firmware}] if doc.device.firmware else None,
    }
    observations = []
    if doc.delivered.peak_hold_force is not None:
        observations.append(
            _force_observation(
                doc, "peak", "peak-hold-force", "Peak force in hold", doc.delivered.peak_hold_force
            )
        )
    if doc.delivered.mean_hold_force is not None:
        observations.append(
            _force_observation(
                doc, "mean", "mean-hold-force", "Mean force in hold", doc.delivered.mean_hold_force
            )
        )
    code = line.cpt_code if line else CPT_TRACTION
    charge: dict[str, Any] = {
        "resourceType": "ChargeItem",
        "id": f"{sid}-charge",
        "status": "billable" if line else "not-billable",
        # one coding: codings in a CodeableConcept are alternatives, so a modifier here would
        # read as another name for the charge; modifiers go on the Claim item
        "code": {"coding": [{"system": CPT, "code": code}]},
        "subject": _subject(doc),
        "occurrencePeriod": _period(doc),
        "quantity": {"value": line.units if line else 1},
        "service": [{"reference": f"Procedure/{sid}"}],
    }
    if line:
        charge["priceOverride"] = {"value": float(line.charge), "currency": "USD"}
    resources = [
        procedure,
        {k: v for k, v in device.items() if v is not None},
        *observations,
        charge,
        *([_claim(doc, line)] if line else []),
    ]
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": (doc.ended_at or doc.started_at).isoformat(),
        "entry": [
            {"fullUrl": f"urn:traction:{r['resourceType']}/{r['id']}", "resource": r}
            for r in resources
        ],
    }
    if doc.simulated:
        # a rehearsal on a simulated table: tagged, and its charge is never billable
        bundle["meta"] = {"tag": [SIMULATED_TAG]}
        for r in resources:
            r["meta"] = {"tag": [SIMULATED_TAG]}
    return bundle


def _claim(doc: Documentation, line: BillingLine) -> dict[str, Any]:
    """The billed line as a Claim: ``item.productOrService`` is the code, ``item.modifier`` the
    modifiers (GP, KX, ...), each its own CodeableConcept, as FHIR places them."""
    total = {"value": float(line.charge * line.units), "currency": "USD"}
    return {
        "resourceType": "Claim",
        "id": f"{doc.session_id}-claim",
        "status": "active",
        "type": {"coding": [{"system": CLAIM_TYPE, "code": "professional"}]},
        "use": "claim",
        "patient": _subject(doc),
        "created": (doc.ended_at or doc.started_at).isoformat(),
        "provider": _practitioner(doc.treating.name, line.rendering_npi or doc.treating.npi),
        "priority": {"coding": [{"system": PRIORITY, "code": "normal"}]},
        "diagnosis": [
            {
                "sequence": n,
                "diagnosisCodeableConcept": {"coding": [{"system": ICD10CM, "code": code}]},
            }
            for n, code in enumerate(line.diagnoses, start=1)
        ],
        "insurance": [
            {"sequence": 1, "focal": True, "coverage": {"display": f"payer {doc.payer or '-'}"}}
        ],
        "item": [
            {
                "sequence": 1,
                "diagnosisSequence": list(line.dx_pointers),
                "productOrService": {"coding": [{"system": CPT, "code": line.cpt_code}]},
                "modifier": [{"coding": [{"system": HCPCS, "code": m}]} for m in line.modifiers],
                "servicedDate": line.date_of_service.isoformat(),
                "locationCodeableConcept": {
                    "coding": [{"system": PLACE_OF_SERVICE, "code": line.place_of_service}]
                },
                "quantity": {"value": line.units},
                "unitPrice": {"value": float(line.charge), "currency": "USD"},
                "net": total,
            }
        ],
        "total": total,
    }


def _codes(concept: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c.get("system", ""), c.get("code", "")) for c in concept.get("coding", [])]


def check_codes(bundle: dict[str, Any]) -> list[str]:
    """What ``fhir.resources`` does not check: every status, system and code this product emits."""
    problems: list[str] = []
    if bundle.get("type") != "collection":
        problems.append(f"Bundle.type {bundle.get('type')!r} is not 'collection'")
    for entry in bundle.get("entry", []):
        r = entry["resource"]
        kind, rid = r["resourceType"], r.get("id", "?")
        where = f"{kind}/{rid}"
        allowed = {
            "Procedure": PROCEDURE_STATUS,
            "Observation": OBSERVATION_STATUS,
            "ChargeItem": CHARGE_STATUS,
            "Device": DEVICE_STATUS,
        }.get(kind)
        if allowed is not None and r.get("status") not in allowed:
            problems.append(f"{where}.status {r.get('status')!r} is not one of {sorted(allowed)}")
        if kind in ("Procedure", "ChargeItem"):
            codes = _codes(r["code"])
            if codes not in ([(CPT, "97012")], [(CPT, "S9090")]):
                problems.append(
                    f"{where}.code must be exactly one code, 97012 or S9090 in {CPT} (a "
                    f"modifier is not an alternative coding of the charge), got {codes}"
                )
        if kind == "Claim":
            for item in r.get("item", []):
                codes = _codes(item["productOrService"])
                if codes not in ([(CPT, "97012")], [(CPT, "S9090")]):
                    problems.append(f"{where}.item.productOrService must be 97012 or S9090")
                for modifier in item.get("modifier", []):
                    for system, code in _codes(modifier):
                        if system != HCPCS or code not in MODIFIERS:
                            problems.append(
                                f"{where}.item.modifier {system}|{code} is not one of "
                                f"{sorted(MODIFIERS)} in {HCPCS}"
                            )
        if kind == "Procedure":
            for site in r.get("bodySite", []):
                for system, code in _codes(site):
                    if system != SNOMED or code not in {v[0] for v in BODY_SITES.values()}:
                        problems.append(
                            f"{where}.bodySite {system}|{code} is not a SNOMED spine region"
                        )
            for reason in r.get("reasonCode", []):
                for system, code in _codes(reason):
                    if system != ICD10CM or not is_well_formed(code):
                        problems.append(
                            f"{where}.reasonCode {system}|{code} is not an ICD-10-CM code"
                        )
        if kind == "Observation":
            q = r.get("valueQuantity", {})
            if q.get("system") != UCUM or q.get("code") not in UCUM_FORCE.values():
                problems.append(
                    f"{where}.valueQuantity {q.get('system')}|{q.get('code')} is not a UCUM force unit"
                )
        if kind == "ChargeItem" and r.get("quantity", {}).get("value") != 1:
            problems.append(f"{where}.quantity must be 1 (97012 is one unit per encounter)")
    return problems


def validate_bundle(bundle: dict[str, Any]) -> None:
    """Structure by ``fhir.resources.R4B`` (raises pydantic's ValidationError), then codes by
    :func:`check_codes` (raises :class:`FhirCodeError`)."""
    Bundle.model_validate(bundle)
    problems = check_codes(bundle)
    if problems:
        raise FhirCodeError(problems)


def render_fhir(doc: Documentation, line: BillingLine | None = None) -> dict[str, Any]:
    """The validated bundle as a JSON-ready dict."""
    bundle = build_bundle(doc, line)
    validate_bundle(bundle)
    return bundle
