"""Billing readiness: one test per rule (code and severity), and the clean cases with no finding."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from documentation_factory import PT, make_doc, trip_event

from devices.errors import ConfigError
from devices.records import Outcome
from session.billing import (
    Finding,
    Payer,
    Severity,
    billing_lines,
    check_readiness,
    default_payers,
    load_ncci_pairs,
    load_payers,
)
from session.documentation import (
    AbnStatus,
    Amendment,
    Clinician,
    Discipline,
    Documentation,
    PlanOfCare,
    Region,
    Seal,
    Supervision,
)

MEDICARE = default_payers()["medicare"]
CIGNA = default_payers()["cigna-example"]
DC = Clinician(name="Sam Ortiz", credentials="DC", discipline=Discipline.DC, npi="1112223334")
OT = Clinician(name="Ari Bloom", credentials="OTR/L", discipline=Discipline.OT, npi="1555666777")


def codes(findings: list[Finding]) -> dict[str, Severity]:
    return {f.code: f.severity for f in findings}


def only(findings: list[Finding], code: str) -> Finding:
    hits = [f for f in findings if f.code == code]
    assert len(hits) == 1, findings
    return hits[0]


def test_complete_medicare_session_has_no_finding() -> None:
    assert check_readiness([make_doc()], MEDICARE) == []


def test_complete_commercial_session_with_prior_care_has_no_finding() -> None:
    doc = make_doc(payer="cigna-example", prior_active_care_weeks=4)
    assert check_readiness([doc], CIGNA) == []


@pytest.mark.parametrize(
    ("diagnoses", "code", "severity"),
    [
        (("M54.16", "M5X.1!"), "ICD_INVALID", Severity.BLOCKING),
        (("M54.16", "M54.5"), "ICD_DELETED", Severity.BLOCKING),
        (("M54.16", "M51.36"), "ICD_HEADER", Severity.BLOCKING),
        (("M54.16", "M54.4"), "ICD_HEADER", Severity.BLOCKING),
        (("M54.16", "I10"), "ICD_NOT_SPINE", Severity.WARNING),
        (("M54.16", "M54.89"), "ICD_UNVERIFIED", Severity.WARNING),
        (("I10",), "NO_SPINE_DIAGNOSIS", Severity.BLOCKING),
        ((), "NO_DIAGNOSIS", Severity.BLOCKING),
        (("M54.12",), "ICD_REGION_MISMATCH", Severity.WARNING),
    ],
)
def test_diagnosis_rules(diagnoses: tuple[str, ...], code: str, severity: Severity) -> None:
    findings = check_readiness([make_doc(diagnoses=diagnoses)], MEDICARE)
    assert only(findings, code).severity == severity


def test_m51_36_is_billable_before_fy2025_and_a_header_after() -> None:
    before = make_doc(diagnoses=("M51.36",), start=datetime(2024, 9, 30, 9, 0, tzinfo=UTC))
    after = make_doc(diagnoses=("M51.36",), start=datetime(2024, 10, 1, 9, 0, tzinfo=UTC))
    assert check_readiness([before], MEDICARE) == []
    assert codes(check_readiness([after], MEDICARE))["ICD_HEADER"] == Severity.BLOCKING
    sixth = make_doc(diagnoses=("M51.362",), start=datetime(2024, 10, 1, 9, 0, tzinfo=UTC))
    assert check_readiness([sixth], MEDICARE) == []


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"medical_necessity": "  "}, "NO_MEDICAL_NECESSITY"),
        ({"signature": None}, "NO_SIGNATURE"),
        ({"plan_of_care": None}, "NO_PLAN_OF_CARE"),
        ({"supervision": Supervision.NOT_PRESENT}, "NO_SUPERVISION"),
        ({"seal": None}, "NOT_SEALED"),
        ({"seal": Seal(algorithm="sha256", digest="00", verified=False)}, "SEAL_MISMATCH"),
        ({"treating": OT}, "MODIFIER_DISCIPLINE"),
    ],
)
def test_blocking_record_rules(overrides: dict[str, object], code: str) -> None:
    findings = check_readiness([make_doc(**overrides)], MEDICARE)
    assert only(findings, code).severity == Severity.BLOCKING


def test_missing_patient_response_is_a_warning_on_a_completed_session() -> None:
    findings = check_readiness([make_doc(patient_response=None)], MEDICARE)
    assert codes(findings) == {"NO_PATIENT_RESPONSE": Severity.WARNING}


def test_tripped_session_is_a_warning_naming_the_trip() -> None:
    doc = make_doc(outcome=Outcome.TRIPPED, events=(trip_event(),))
    finding = only(check_readiness([doc], MEDICARE), "SESSION_TRIPPED")
    assert finding.severity == Severity.WARNING
    assert "over-force" in finding.message and "300 s" in finding.message


def test_interrupted_session_blocks_until_an_amendment_explains_it() -> None:
    doc = make_doc(outcome=Outcome.INTERRUPTED)
    assert only(check_readiness([doc], MEDICARE), "SESSION_INTERRUPTED").severity == (
        Severity.BLOCKING
    )
    note = Amendment(
        at=datetime(2025, 3, 14, 16, 0, tzinfo=UTC),
        by=PT.name,
        field="outcome_reason",
        reason="power cut at the workstation; patient released, no symptoms",
    )
    explained = doc.model_copy(update={"amendments": (note,)})
    assert only(check_readiness([explained], MEDICARE), "SESSION_INTERRUPTED").severity == (
        Severity.WARNING
    )


def test_minutes_below_the_payer_minimum_warn_only_where_the_payer_has_one() -> None:
    short = make_doc(minutes=10, payer="cigna-example", prior_active_care_weeks=4)
    assert only(check_readiness([short], CIGNA), "MINUTES_BELOW_PAYER_MIN").severity == (
        Severity.WARNING
    )
    assert check_readiness([make_doc(minutes=10)], MEDICARE) == []


def test_prior_active_care_expected_by_the_commercial_payer() -> None:
    doc = make_doc(payer="cigna-example")
    assert codes(check_readiness([doc], CIGNA)) == {"PRIOR_CARE_NOT_DOCUMENTED": Severity.WARNING}


def test_payer_mismatch_is_reported() -> None:
    assert codes(check_readiness([make_doc(payer="cigna-example")], MEDICARE)) == {
        "PAYER_MISMATCH": Severity.WARNING
    }


# --- units and encounters ---------------------------------------------------------------


def test_cervical_and_lumbar_in_one_visit_is_one_unit() -> None:
    doc = make_doc(regions=(Region.CERVICAL, Region.LUMBAR), diagnoses=("M54.12", "M54.16"))
    lines = billing_lines([doc], MEDICARE)
    assert [(line.cpt_code, line.units) for line in lines] == [("97012", 1)]
    assert check_readiness([doc], MEDICARE) == []


def test_two_sessions_for_one_patient_on_one_date_make_one_billable_line() -> None:
    morning = make_doc("s1", start=datetime(2025, 3, 14, 9, 0, tzinfo=UTC))
    afternoon = make_doc("s2", start=datetime(2025, 3, 14, 15, 0, tzinfo=UTC))
    lines = billing_lines([afternoon, morning], MEDICARE)
    assert len(lines) == 1
    assert lines[0].units == 1 and lines[0].session_ids == ("s1", "s2")
    finding = only(check_readiness([afternoon, morning], MEDICARE), "UNITS_PER_DOS")
    assert finding.severity == Severity.WARNING and finding.session_id == "s2"


def test_other_patients_and_dates_get_their_own_lines() -> None:
    docs = [
        make_doc("s1"),
        make_doc("s2", patient_ref="P-200"),
        make_doc("s3", start=datetime(2025, 3, 15, 9, 0, tzinfo=UTC)),
    ]
    assert len(billing_lines(docs, MEDICARE)) == 3
    assert check_readiness(docs, MEDICARE) == []


# --- modifiers --------------------------------------------------------------------------


def line_mods(doc: Documentation, payer: Payer = MEDICARE, **kw: object) -> tuple[str, ...]:
    (line,) = billing_lines([doc], payer, **kw)  # type: ignore[arg-type]
    return line.modifiers


def test_therapy_modifier_follows_the_discipline() -> None:
    assert line_mods(make_doc()) == ("GP",)
    ot_plan = PlanOfCare(reference="POC-9", discipline=Discipline.OT)
    assert line_mods(make_doc(treating=OT, plan_of_care=ot_plan)) == ("GO",)


def test_kx_above_the_years_threshold_only() -> None:
    assert line_mods(make_doc(), year_to_date_spend=Decimal("2300")) == ("GP",)
    assert line_mods(make_doc(), year_to_date_spend=Decimal("2400")) == ("GP", "KX")
    finding = only(check_readiness([make_doc()], MEDICARE, Decimal("2400")), "KX_REQUIRED")
    assert finding.severity == Severity.WARNING and "2410" in finding.message
    # 2024's threshold is lower: the same spend needs KX then
    old = make_doc(start=datetime(2024, 6, 3, 9, 0, tzinfo=UTC))
    assert line_mods(old, year_to_date_spend=Decimal("2320")) == ("GP", "KX")


def test_targeted_review_above_3000() -> None:
    findings = check_readiness([make_doc()], MEDICARE, Decimal("2995"))
    assert codes(findings) == {"KX_REQUIRED": Severity.WARNING, "TARGETED_REVIEW": Severity.WARNING}


def test_a_year_without_a_kx_threshold_is_reported_not_guessed() -> None:
    doc = make_doc(start=datetime(2027, 2, 1, 9, 0, tzinfo=UTC))
    assert codes(check_readiness([doc], MEDICARE)) == {"KX_THRESHOLD_UNKNOWN": Severity.BLOCKING}


def test_ga_with_a_signed_abn_gz_without() -> None:
    assert line_mods(make_doc(abn=AbnStatus.SIGNED)) == ("GP", "GA")
    assert check_readiness([make_doc(abn=AbnStatus.SIGNED)], MEDICARE) == []
    assert line_mods(make_doc(abn=AbnStatus.NOT_OBTAINED)) == ("GP", "GZ")
    finding = only(check_readiness([make_doc(abn=AbnStatus.NOT_OBTAINED)], MEDICARE), "ABN_GA_GZ")
    assert finding.severity == Severity.WARNING


def test_chiropractor_to_medicare_gets_gp_gy_and_never_gz() -> None:
    doc = make_doc(treating=DC, plan_of_care=None, abn=AbnStatus.NOT_OBTAINED)
    assert line_mods(doc) == ("GP", "GY")
    found = codes(check_readiness([doc], MEDICARE))
    assert found["CHIRO_MEDICARE"] == Severity.WARNING
    assert found["GY_WITH_GZ"] == Severity.WARNING
    clean = make_doc(treating=DC, abn=AbnStatus.NOT_REQUIRED)
    assert "GY_WITH_GZ" not in codes(check_readiness([clean], MEDICARE))
    assert "CHIRO_MEDICARE" not in codes(check_readiness([clean], CIGNA))


def test_decompression_with_medicare_is_gz_without_an_abn_and_ga_with_one() -> None:
    doc = make_doc(decompression=True)
    found = codes(check_readiness([doc], MEDICARE))
    assert found == {
        "DECOMPRESSION_NOT_COVERED": Severity.WARNING,  # non-covered: billed for the denial
        "ABN_GA_GZ": Severity.WARNING,
    }
    assert line_mods(doc) == ("GP", "GZ")
    signed = make_doc(decompression=True, abn=AbnStatus.SIGNED)
    assert codes(check_readiness([signed], MEDICARE)) == {
        "DECOMPRESSION_NOT_COVERED": Severity.WARNING
    }
    assert line_mods(signed) == ("GP", "GA")


def test_decompression_is_billed_as_s9090_where_the_payer_says_so() -> None:
    doc = make_doc(decompression=True, payer="cigna-example", prior_active_care_weeks=4)
    (line,) = billing_lines([doc], CIGNA)
    assert line.cpt_code == "S9090" and line.charge == Decimal("35.00")
    assert codes(check_readiness([doc], CIGNA)) == {"DECOMPRESSION_NOT_COVERED": Severity.WARNING}


NCCI = load_ncci_pairs(
    '[[pairs]]\ncolumn1 = "97140"\ncolumn2 = "97012"\nmodifier_indicator = 1\n'
    '[[pairs]]\ncolumn1 = "97999"\ncolumn2 = "97012"\nmodifier_indicator = 0\n',
    "test-ncci",
)


def test_distinct_modifier_only_for_a_configured_pair_and_never_59_with_x() -> None:
    unrelated = make_doc(same_day_codes=("97110",), distinct_modifier="XS")
    assert line_mods(unrelated, ncci_pairs=NCCI) == ("GP",)
    paired = make_doc(same_day_codes=("97140",), distinct_modifier="XS")
    assert line_mods(paired, ncci_pairs=NCCI) == ("GP", "XS")
    assert check_readiness([paired], MEDICARE, ncci_pairs=NCCI) == []
    commercial = make_doc(
        same_day_codes=("97140",),
        distinct_modifier="XS",
        payer="cigna-example",
        prior_active_care_weeks=4,
    )
    mods = line_mods(commercial, CIGNA, ncci_pairs=NCCI)
    assert mods == ("GP", "59") and not {"XE", "XS", "XP", "XU"} & set(mods)


def test_ncci_pair_without_a_documented_distinct_reason_blocks() -> None:
    doc = make_doc(same_day_codes=("97140",))
    assert only(check_readiness([doc], MEDICARE, ncci_pairs=NCCI), "NCCI_BUNDLED").severity == (
        Severity.BLOCKING
    )
    never = make_doc(same_day_codes=("97999",), distinct_modifier="XU")
    assert codes(check_readiness([never], MEDICARE, ncci_pairs=NCCI)) == {
        "NCCI_BUNDLED": Severity.BLOCKING
    }
    assert line_mods(never, ncci_pairs=NCCI) == ("GP",)


def test_diagnosis_pointers_skip_unbillable_codes_and_put_spine_first() -> None:
    doc = make_doc(diagnoses=("I10", "M54.5", "M54.16", "M51.16"))
    (line,) = billing_lines([doc], MEDICARE)
    assert line.diagnoses == ("M54.16", "M51.16", "I10")
    assert line.dx_pointers == (1, 2, 3)


# --- payer files ------------------------------------------------------------------------


def test_bad_payer_file_names_the_payer_and_field() -> None:
    text = '[payers.x]\nname = "X"\ntherapy_modifiers = {PT = "GP"}\nfee = "abc"\n'
    with pytest.raises(ConfigError) as err:
        load_payers(text, "payers.toml")
    assert "payers.x.fee" in str(err.value)


def test_bad_ncci_indicator_is_refused() -> None:
    with pytest.raises(ConfigError, match="modifier_indicator"):
        load_ncci_pairs(
            '[[pairs]]\ncolumn1 = "1"\ncolumn2 = "97012"\nmodifier_indicator = 4\n', "f"
        )


@pytest.mark.parametrize(
    ("npi", "blocked"),
    [("123456789", True), ("1234567893", False), ("12345678931", True), ("12345678a3", True)],
)
def test_the_npi_must_be_exactly_ten_digits(npi: str, blocked: bool) -> None:
    doc = make_doc(treating=PT.model_copy(update={"npi": npi}))
    assert ("NO_NPI" in codes(check_readiness([doc], MEDICARE))) is blocked


@pytest.mark.parametrize(("minutes", "warned"), [(14.99, True), (15.0, False), (15.01, False)])
def test_the_payers_minimum_minutes_warns_just_below_only(minutes: float, warned: bool) -> None:
    doc = make_doc(payer="cigna-example", prior_active_care_weeks=4)
    doc = doc.model_copy(
        update={"delivered": doc.delivered.model_copy(update={"treatment_minutes": minutes})}
    )
    assert ("MINUTES_BELOW_PAYER_MIN" in codes(check_readiness([doc], CIGNA))) is warned


@pytest.mark.parametrize(
    ("prior", "kx"), [("2465.76", False), ("2465.77", False), ("2465.78", True)]
)
def test_kx_at_just_below_exactly_and_just_above_the_threshold(prior: str, kx: bool) -> None:
    """2026 threshold $2,480 with a $14.23 fee: 2465.77 + 14.23 is exactly 2480.00."""
    doc = make_doc(start=datetime(2026, 3, 14, 14, 0, tzinfo=UTC))
    (line,) = billing_lines([doc], MEDICARE, year_to_date_spend=Decimal(prior))
    assert ("KX" in line.modifiers) is kx
    assert ("KX_REQUIRED" in codes(check_readiness([doc], MEDICARE, Decimal(prior)))) is kx


def test_kx_runs_per_patient_not_per_payer_group() -> None:
    """Four patients at $2,450 each: every one reaches $2,464.23, none passes $2,480."""
    docs = [
        make_doc(f"s{n}", patient_ref=f"P-{n}", start=datetime(2026, 3, 14, 14, 0, tzinfo=UTC))
        for n in range(4)
    ]
    lines = billing_lines(docs, MEDICARE, year_to_date_spend=Decimal("2450"))
    assert len(lines) == 4 and all("KX" not in line.modifiers for line in lines)


def test_simulated_sessions_have_no_line_and_are_blocked() -> None:
    doc = make_doc().model_copy(update={"simulated": True, "time_scale": 20.0})
    assert billing_lines([doc], MEDICARE) == []
    assert codes(check_readiness([doc], MEDICARE))["SIMULATED"] == Severity.BLOCKING
