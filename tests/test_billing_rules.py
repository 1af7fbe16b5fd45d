"""Billing rules at their exact thresholds, and the rules test_billing.py leaves out: each finding's
code and severity, just at the threshold (no finding) and one cent, one week or one digit past it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from documentation_factory import PT, SUPERVISOR, make_doc

from devices.errors import ConfigError
from devices.records import Event, EventKind, Outcome
from session.billing import (
    Finding,
    NcciPair,
    Payer,
    Severity,
    billing_lines,
    blocked_sessions,
    check_readiness,
    default_ncci_pairs,
    default_payers,
    load_ncci_pairs,
    load_payers,
    parse_money,
    summarize,
)
from session.documentation import AbnStatus, Amendment, Documentation, Region

MEDICARE = default_payers()["medicare"]
CIGNA = default_payers()["cigna-example"]
FEE = MEDICARE.fee  # each encounter adds the fee to the year's spend before the KX check


def codes(findings: list[Finding]) -> dict[str, Severity]:
    return {f.code: f.severity for f in findings}


def only(findings: list[Finding], code: str) -> Finding:
    hits = [f for f in findings if f.code == code]
    assert len(hits) == 1, findings
    return hits[0]


def mods(
    doc: Documentation, payer: Payer = MEDICARE, spend: Decimal = Decimal(0)
) -> tuple[str, ...]:
    (line,) = billing_lines([doc], payer, spend)
    return line.modifiers


# --- the KX threshold and targeted review, to the cent ---------------------------------------------


def test_spend_reaching_exactly_the_kx_threshold_needs_no_kx() -> None:
    threshold = MEDICARE.kx_threshold(2025)
    assert threshold == Decimal("2410.00")
    at = threshold - FEE
    assert mods(make_doc(), spend=at) == ("GP",)
    assert "KX_REQUIRED" not in codes(check_readiness([make_doc()], MEDICARE, at))


def test_spend_one_cent_past_the_kx_threshold_appends_kx_and_says_so() -> None:
    past = Decimal("2410.01") - FEE
    assert mods(make_doc(), spend=past) == ("GP", "KX")
    finding = only(check_readiness([make_doc()], MEDICARE, past), "KX_REQUIRED")
    assert finding.severity == Severity.WARNING and finding.session_id == "s1"
    assert finding.message.startswith("therapy spending reaches $2410.01 in 2025, above $2410.00")


def test_targeted_review_starts_one_cent_past_its_threshold() -> None:
    at = Decimal("3000.00") - FEE
    assert "TARGETED_REVIEW" not in codes(check_readiness([make_doc()], MEDICARE, at))
    finding = only(check_readiness([make_doc()], MEDICARE, at + Decimal("0.01")), "TARGETED_REVIEW")
    assert finding.severity == Severity.WARNING and "$3000.01, above $3000.00" in finding.message


def test_each_encounter_adds_its_fee_so_the_second_visit_crosses_the_threshold() -> None:
    first = make_doc("s1", start=datetime(2025, 3, 14, 9, 0, tzinfo=UTC))
    second = make_doc("s2", start=datetime(2025, 3, 15, 9, 0, tzinfo=UTC))
    spend = Decimal("2410.00") - FEE  # the first visit lands exactly on the threshold
    lines = billing_lines([second, first], MEDICARE, spend)
    assert [line.modifiers for line in lines] == [("GP",), ("GP", "KX")]
    assert only(check_readiness([first, second], MEDICARE, spend), "KX_REQUIRED").session_id == "s2"


def test_a_chiropractor_never_gets_kx_or_targeted_review() -> None:
    from test_billing import DC

    doc = make_doc(treating=DC, plan_of_care=None)
    assert mods(doc, spend=Decimal("5000")) == ("GP", "GY")
    assert not {"KX_REQUIRED", "TARGETED_REVIEW", "KX_THRESHOLD_UNKNOWN"} & set(
        codes(check_readiness([doc], MEDICARE, Decimal("5000")))
    )


# --- record rules without a test elsewhere ----------------------------------------------------------


@pytest.mark.parametrize("npi", [None, "", "123456789", "12345678901", "12345678a9", " 234567893"])
def test_an_npi_that_is_not_ten_digits_blocks(npi: str | None) -> None:
    doc = make_doc(treating=PT.model_copy(update={"npi": npi}))
    finding = only(check_readiness([doc], MEDICARE), "NO_NPI")
    assert finding.severity == Severity.BLOCKING
    assert finding.message == f"Dana Reyes has no valid 10-digit NPI ({npi!r}): add it"


def test_a_ten_digit_npi_passes_and_is_the_rendering_npi() -> None:
    assert check_readiness([make_doc()], MEDICARE) == []
    (line,) = billing_lines([make_doc()], MEDICARE)
    assert line.rendering_npi == PT.npi and line.supervising_npi == "1987654320"


@pytest.mark.parametrize("field", ["model", "serial"])
@pytest.mark.parametrize("value", ["", "   "])
def test_a_missing_device_model_or_serial_blocks(field: str, value: str) -> None:
    doc = make_doc()
    doc = doc.model_copy(update={"device": doc.device.model_copy(update={field: value})})
    finding = only(check_readiness([doc], MEDICARE), "NO_DEVICE_ID")
    assert finding.severity == Severity.BLOCKING and "(table 'lumbar-1')" in finding.message


def test_no_treated_region_blocks() -> None:
    doc = make_doc().model_copy(update={"regions": ()})
    finding = only(check_readiness([doc], MEDICARE), "NO_REGION")
    assert finding.severity == Severity.BLOCKING


@pytest.mark.parametrize("outcome", [Outcome.TRIPPED, Outcome.INTERRUPTED])
def test_a_disrupted_session_without_the_patients_response_blocks(outcome: Outcome) -> None:
    doc = make_doc(outcome=outcome, patient_response="  ")
    finding = only(check_readiness([doc], MEDICARE), "NO_PATIENT_RESPONSE")
    assert finding.severity == Severity.BLOCKING
    assert "s1" in blocked_sessions(check_readiness([doc], MEDICARE))


def test_a_trip_without_a_trip_event_names_the_recorded_reason() -> None:
    doc = make_doc(outcome=Outcome.TRIPPED)
    finding = only(check_readiness([doc], MEDICARE), "SESSION_TRIPPED")
    assert "(see events)" in finding.message and finding.severity == Severity.WARNING


def test_a_diagnosis_for_another_region_than_the_one_treated_warns() -> None:
    doc = make_doc(regions=(Region.CERVICAL,))
    finding = only(check_readiness([doc], MEDICARE), "ICD_REGION_MISMATCH")
    assert finding.severity == Severity.WARNING
    assert "the diagnoses are lumbar but traction was cervical" in finding.message


# --- payer rules ----------------------------------------------------------------------------------


def test_a_payer_that_does_not_cover_traction_blocks_and_the_line_carries_gz() -> None:
    uncovered = MEDICARE.model_copy(update={"traction_covered": False})
    found = check_readiness([make_doc()], uncovered)
    assert only(found, "TRACTION_NOT_COVERED").severity == Severity.BLOCKING
    assert codes(found)["ABN_GA_GZ"] == Severity.WARNING
    assert mods(make_doc(), uncovered) == ("GP", "GZ")
    assert mods(make_doc(abn=AbnStatus.SIGNED), uncovered) == ("GP", "GA")


def test_an_abn_status_with_a_payer_that_does_not_use_abns_warns_and_adds_nothing() -> None:
    doc = make_doc(abn=AbnStatus.SIGNED, payer="cigna-example", prior_active_care_weeks=3)
    finding = only(check_readiness([doc], CIGNA), "ABN_NOT_USED")
    assert finding.severity == Severity.WARNING and "'signed' is ignored" in finding.message
    assert mods(doc, CIGNA) == ("GP",)


def test_a_payer_without_a_modifier_for_the_discipline_blocks_and_adds_none() -> None:
    no_pt = MEDICARE.model_copy(update={"therapy_modifiers": {}})
    finding = only(check_readiness([make_doc()], no_pt), "MODIFIER_DISCIPLINE")
    assert finding.severity == Severity.BLOCKING
    assert finding.message == "Medicare Part B has no therapy modifier for discipline PT"
    assert mods(make_doc(), no_pt) == ()


def test_prior_active_care_of_exactly_the_weeks_required_passes() -> None:
    enough = make_doc(payer="cigna-example", prior_active_care_weeks=3)
    assert check_readiness([enough], CIGNA) == []
    short = make_doc(payer="cigna-example", prior_active_care_weeks=2)
    assert codes(check_readiness([short], CIGNA)) == {"PRIOR_CARE_NOT_DOCUMENTED": Severity.WARNING}


def test_treatment_minutes_at_the_payer_minimum_pass_and_below_warn() -> None:
    at = make_doc(minutes=16, payer="cigna-example", prior_active_care_weeks=3)
    minimum = at.delivered.treatment_minutes
    payer = CIGNA.model_copy(update={"min_traction_minutes": minimum})
    assert check_readiness([at], payer) == []
    above = CIGNA.model_copy(update={"min_traction_minutes": minimum + 0.01})
    finding = only(check_readiness([at], above), "MINUTES_BELOW_PAYER_MIN")
    assert finding.severity == Severity.WARNING


def test_units_and_charge_come_from_the_payer() -> None:
    (line,) = billing_lines([make_doc()], MEDICARE)
    assert (line.units, line.charge, line.cpt_code) == (1, FEE, "97012")


def test_at_most_four_diagnosis_pointers() -> None:
    doc = make_doc(diagnoses=("M54.16", "M51.16", "M54.12", "M50.11", "M48.061"))
    (line,) = billing_lines([doc], MEDICARE)
    assert len(line.diagnoses) == 5 and line.dx_pointers == (1, 2, 3, 4)


# --- money, summaries and payer files -------------------------------------------------------------


def test_money_is_parsed_and_bad_or_negative_amounts_are_refused() -> None:
    assert parse_money("0", "--ytd-spend") == Decimal(0)
    assert parse_money("1250.50", "--ytd-spend") == Decimal("1250.50")
    with pytest.raises(ConfigError, match="is negative"):
        parse_money("-0.01", "--ytd-spend")
    with pytest.raises(ConfigError, match="is not an amount in dollars"):
        parse_money("12,50", "--ytd-spend")


def test_summaries_count_each_code_and_blocked_sessions_are_those_with_a_blocking_finding() -> None:
    findings = [
        Finding("A", Severity.WARNING, "", "s1"),
        Finding("A", Severity.BLOCKING, "", "s2"),
        Finding("B", Severity.WARNING, "", "s3"),
    ]
    assert summarize(findings) == {"A": 2, "B": 1}
    assert blocked_sessions(findings) == {"s2"}


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("units_per_encounter = 2", "units_per_encounter"),
        ("units_per_encounter = 0", "units_per_encounter"),
        ("min_traction_minutes = -1", "min_traction_minutes"),
        ('fee = "-1"', "fee"),
        ('decompression_code = "97140"', "decompression_code"),
    ],
)
def test_payer_rules_out_of_bounds_are_refused_naming_the_field(line: str, field: str) -> None:
    text = f'[payers.x]\nname = "X"\ntherapy_modifiers = {{PT = "GP"}}\nfee = "1"\n{line}\n'
    text = text.replace('fee = "1"\nfee', "fee")
    with pytest.raises(ConfigError) as err:
        load_payers(text, "payers.toml")
    assert f"payers.x.{field}" in str(err.value)


def test_a_payer_file_without_payers_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"needs at least one \[payers.<key>\] table"):
        load_payers("", "payers.toml")


# --- the rule files themselves --------------------------------------------------------------------


def test_the_shipped_payer_and_ncci_files_load() -> None:
    payers = default_payers()
    assert {"medicare", "cigna-example"} <= set(payers)
    assert payers["medicare"].kx_threshold(2025) == Decimal("2410.00")
    assert payers["medicare"].key == "medicare" and payers["medicare"].uses_abn
    pairs = default_ncci_pairs()
    assert isinstance(pairs, tuple)
    assert all(p.modifier_indicator in (0, 1, 9) for p in pairs)


@pytest.mark.parametrize("loader", [load_payers, load_ncci_pairs])
def test_a_rule_file_that_is_not_toml_is_refused_naming_the_file(loader: Any) -> None:
    with pytest.raises(ConfigError) as err:
        loader("payers = [", "rules.toml")
    assert err.value.where == "rules.toml" and err.value.message.startswith("not valid TOML: ")


@pytest.mark.parametrize("text", ["", "[other]\nx = 1\n", "payers = 3\n", "[payers]\n"])
def test_a_payer_file_without_a_payer_table_is_refused(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_payers(text, "payers.toml")
    assert (err.value.where, err.value.message) == (
        "payers.toml",
        "needs at least one [payers.<key>] table",
    )


def test_a_bad_payer_field_names_the_nested_field_and_the_value_given() -> None:
    text = '[payers.x]\nname = "X"\ntherapy_modifiers = {PT = "GP"}\nfee = "abc"\n'
    with pytest.raises(ConfigError) as err:
        load_payers(text, "payers.toml")
    assert err.value.where == "payers.toml: payers.x.fee"
    assert err.value.message.endswith("(got 'abc')")
    nested = '[payers.x]\nname = "X"\ntherapy_modifiers = {XX = "GP"}\nfee = "1"\n'
    with pytest.raises(ConfigError) as err:
        load_payers(nested, "payers.toml")
    assert err.value.where.startswith("payers.toml: payers.x.therapy_modifiers.XX")


def test_ncci_pairs_load_and_each_bad_row_is_named() -> None:
    good = '[[pairs]]\ncolumn1 = "97140"\ncolumn2 = "97012"\nmodifier_indicator = 9\n'
    assert load_ncci_pairs(good, "f") == (NcciPair("97140", "97012", 9),)
    assert load_ncci_pairs("", "f") == ()
    with pytest.raises(ConfigError) as err:
        load_ncci_pairs(good + '[[pairs]]\ncolumn1 = "97140"\n', "f")
    assert err.value.where == "f: pairs[1]"
    assert err.value.message.startswith("needs column1, column2 and modifier_indicator (")
    with pytest.raises(ConfigError) as err:
        load_ncci_pairs(good.replace("= 9", '= "x"'), "f")
    assert err.value.where == "f: pairs[0]"
    with pytest.raises(ConfigError) as err:
        load_ncci_pairs(good.replace("= 9", "= 2"), "f")
    assert (err.value.where, err.value.message) == (
        "f: pairs[0].modifier_indicator",
        "must be 0, 1 or 9",
    )
    assert NcciPair("97140", "97012", 1).involves("97012", "97140")
    assert not NcciPair("97140", "97012", 1).involves("97012", "97110")


def test_money_errors_name_where_the_amount_came_from() -> None:
    for bad in ("-1", "lots"):
        with pytest.raises(ConfigError) as err:
            parse_money(bad, "--ytd-spend")
        assert err.value.where == "--ytd-spend"


# --- what a billing line carries ------------------------------------------------------------------


def test_a_line_carries_the_encounter_the_people_and_the_place() -> None:
    (line,) = billing_lines([make_doc(patient_ref="P-7")], MEDICARE)
    assert (line.date_of_service, line.patient_ref, line.place_of_service) == (
        date(2025, 3, 14),
        "P-7",
        "11",
    )
    assert (line.rendering_npi, line.supervising_npi) == ("1234567893", "1987654320")
    alone = make_doc(supervising=None, treating=PT.model_copy(update={"npi": None}))
    (line,) = billing_lines([alone], MEDICARE)
    assert (line.rendering_npi, line.supervising_npi) == ("", "")
    unknown = make_doc(supervising=SUPERVISOR.model_copy(update={"npi": None}))
    assert billing_lines([unknown], MEDICARE)[0].supervising_npi == ""


def test_plain_traction_is_97012_even_where_decompression_has_its_own_code() -> None:
    doc = make_doc(payer="cigna-example", prior_active_care_weeks=3)
    assert billing_lines([doc], CIGNA)[0].cpt_code == "97012"


def test_a_diagnosis_documented_in_two_sessions_of_a_day_is_listed_once() -> None:
    morning = make_doc("s1", start=datetime(2025, 3, 14, 9, 0, tzinfo=UTC))
    afternoon = make_doc("s2", start=datetime(2025, 3, 14, 15, 0, tzinfo=UTC))
    (line,) = billing_lines([morning, afternoon], MEDICARE)
    assert line.diagnoses == ("M54.16", "M51.16")


def test_a_blocked_sessions_diagnoses_never_reach_the_claim() -> None:
    blocked = make_doc("s1", start=datetime(2025, 3, 14, 9, 0, tzinfo=UTC), diagnoses=("M54.12",))
    ready = make_doc("s2", start=datetime(2025, 3, 14, 15, 0, tzinfo=UTC), diagnoses=("M54.16",))
    (line,) = billing_lines([blocked, ready], MEDICARE, blocked={"s1"})
    assert line.diagnoses == ("M54.16",)
    assert line.session_ids == ("s2", "s1")  # the ready session carries the line
    (line,) = billing_lines([blocked, ready], MEDICARE, blocked={"s1", "s2"})
    assert set(line.diagnoses) == {"M54.12", "M54.16"}  # nothing ready: the record as it stands


def test_no_diagnosis_blocks_with_what_to_add() -> None:
    finding = only(check_readiness([make_doc("s9", diagnoses=())], MEDICARE), "NO_DIAGNOSIS")
    assert finding.severity == Severity.BLOCKING and finding.session_id == "s9"
    assert finding.message == "no ICD-10-CM diagnosis: add the spine diagnosis traction treats"


# --- every finding says exactly what to fix ---------------------------------------------------------

GOOD = make_doc()
AMENDMENT = Amendment(
    at=datetime(2025, 3, 14, 16, 0, tzinfo=UTC),
    by="Dana Reyes",
    field="outcome_reason",
    reason="power cut at the workstation; patient released, no symptoms",
)
RECORD_FINDINGS = [
    (
        {"simulated": True, "time_scale": 20.0},
        "SIMULATED",
        "the session ran on a simulated table (x20 time): a rehearsal is never billed",
    ),
    (
        {"medical_necessity": " "},
        "NO_MEDICAL_NECESSITY",
        "no statement of medical necessity: say how traction serves the plan-of-care goals",
    ),
    (
        {"signature": None},
        "NO_SIGNATURE",
        "the note is not signed: Dana Reyes must sign with credentials",
    ),
    (
        {"plan_of_care": None},
        "NO_PLAN_OF_CARE",
        "no plan of care: attach the certified plan of care with its goals",
    ),
    ({"regions": ()}, "NO_REGION", "no treated region recorded: add cervical or lumbar"),
    (
        {"supervision": "not_present"},
        "NO_SUPERVISION",
        "97012 is a supervised modality: a qualified professional must have been in the facility",
    ),
    ({"seal": None}, "NOT_SEALED", "the session record is not sealed: finish or recover it"),
    (
        {"seal": GOOD.seal.model_copy(update={"verified": False}) if GOOD.seal else None},
        "SEAL_MISMATCH",
        "the session's digest does not match its stored record: the record changed after sealing",
    ),
    (
        {"diagnoses": ("I10",)},
        "NO_SPINE_DIAGNOSIS",
        "no valid spine diagnosis supports traction: add a billable cervical or lumbar code",
    ),
    (
        {"regions": (Region.CERVICAL,)},
        "ICD_REGION_MISMATCH",
        "the diagnoses are lumbar but traction was cervical: add a diagnosis for the treated region",
    ),
    (
        {"patient_response": None},
        "NO_PATIENT_RESPONSE",
        "no patient response or tolerance recorded: add it to the note",
    ),
]


@pytest.mark.parametrize(
    ("changes", "code", "message"), RECORD_FINDINGS, ids=[c for _, c, _ in RECORD_FINDINGS]
)
def test_each_record_finding_says_exactly_what_to_fix(
    changes: dict[str, Any], code: str, message: str
) -> None:
    doc = GOOD.model_copy(update={"session_id": "s7", **changes})
    finding = only(check_readiness([doc], MEDICARE), code)
    assert (finding.message, finding.session_id) == (message, "s7")


def test_an_interrupted_session_says_how_long_it_ran_and_what_to_add() -> None:
    doc = make_doc(outcome=Outcome.INTERRUPTED)
    minutes = doc.delivered.treatment_minutes
    finding = only(check_readiness([doc], MEDICARE), "SESSION_INTERRUPTED")
    assert finding.message == (
        f"the session never finished ({minutes} min delivered): add an amendment stating why, "
        "and the patient's response"
    )
    explained = doc.model_copy(update={"amendments": (AMENDMENT,)})
    finding = only(check_readiness([explained], MEDICARE), "SESSION_INTERRUPTED")
    assert finding.message == f"the session never finished ({minutes} min delivered)"


@pytest.mark.parametrize("kind", [EventKind.TRIP, EventKind.STOP_SWITCH, EventKind.FAULT])
def test_a_tripped_session_names_its_first_interruption(kind: EventKind) -> None:
    event = Event("s1", 400.0, kind, "patient pressed the stop switch")
    doc = make_doc(outcome=Outcome.TRIPPED, events=(event,))
    finding = only(check_readiness([doc], MEDICARE), "SESSION_TRIPPED")
    assert finding.message == (
        f"the session tripped ({kind.value} at 300 s: patient pressed the stop switch): document "
        "the interruption and the patient's response"
    )


def test_an_error_in_a_shipped_rule_file_names_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("payers = [", encoding="utf-8")
    monkeypatch.setattr("session.billing.config_file", lambda *parts: broken)
    with pytest.raises(ConfigError) as err:
        default_payers()
    assert err.value.where == "configs/payers.toml"
    with pytest.raises(ConfigError) as err:
        default_ncci_pairs()
    assert err.value.where == "configs/ncci/ptp-97012.toml"


def test_every_ncci_indicator_the_rules_define_loads() -> None:
    rows = "".join(
        f'[[pairs]]\ncolumn1 = "9714{i}"\ncolumn2 = "97012"\nmodifier_indicator = {i}\n'
        for i in (0, 1, 9)
    )
    assert [p.modifier_indicator for p in load_ncci_pairs(rows, "f")] == [0, 1, 9]


def test_a_code_finding_carries_the_catalogs_explanation() -> None:
    from session.icd10 import default_catalog

    doc = make_doc(diagnoses=("M51.36", "M54.16"), start=datetime(2024, 10, 1, 9, 0, tzinfo=UTC))
    finding = only(check_readiness([doc], MEDICARE), "ICD_HEADER")
    expected = default_catalog().check("M51.36", doc.date_of_service).message
    assert finding.message == expected and "M51.36" in finding.message


def test_diagnoses_of_both_regions_name_both_when_neither_was_treated() -> None:
    doc = make_doc(diagnoses=("M54.12", "M54.16")).model_copy(update={"regions": ()})
    finding = only(check_readiness([doc], MEDICARE), "ICD_REGION_MISMATCH")
    assert finding.message.startswith("the diagnoses are cervical/lumbar but traction was :")


def test_each_payer_finding_says_exactly_what_to_fix() -> None:
    from test_billing import OT

    mismatch = only(
        check_readiness([make_doc("s3", payer="cigna-example")], MEDICARE), "PAYER_MISMATCH"
    )
    assert (mismatch.message, mismatch.session_id) == (
        "the note names payer 'cigna-example' but the claim goes to 'medicare'",
        "s3",
    )
    uncovered = MEDICARE.model_copy(update={"traction_covered": False})
    finding = only(check_readiness([make_doc()], uncovered), "TRACTION_NOT_COVERED")
    assert finding.message == (
        "Medicare Part B does not cover mechanical traction: do not bill, or bill the patient"
    )
    finding = only(check_readiness([make_doc(treating=OT)], MEDICARE), "MODIFIER_DISCIPLINE")
    assert finding.message == (
        "the plan of care is PT but Ari Bloom is OT: the therapy modifier must match; have a PT "
        "treat or correct the plan"
    )


def test_only_an_assistant_gets_an_assistant_modifier_whatever_the_payer_file_maps() -> None:
    from session.models import Discipline

    odd = MEDICARE.model_copy(update={"assistant_modifiers": {Discipline.PT: "CQ"}})
    assert mods(make_doc(), odd) == ("GP",)


NCCI_PAIRS = (NcciPair("97140", "97012", 1), NcciPair("97999", "97012", 0))


def payer_findings() -> list[tuple[Documentation, Payer, str, str]]:
    from test_billing import DC

    return [
        (
            make_doc(treating=DC, plan_of_care=None),
            MEDICARE,
            "CHIRO_MEDICARE",
            "therapy by a chiropractor is not a Medicare Part B benefit: billed with GY for the "
            "denial; the patient is liable",
        ),
        (
            make_doc(treating=DC, plan_of_care=None, abn=AbnStatus.NOT_OBTAINED),
            MEDICARE,
            "GY_WITH_GZ",
            "a statutorily excluded service takes GY, never GZ: billed with GY only; set the ABN "
            "status to not_required (an ABN is voluntary here)",
        ),
        (
            make_doc(decompression=True),
            MEDICARE,
            "DECOMPRESSION_NOT_COVERED",
            "Medicare Part B does not cover vertebral axial decompression (billed as 97012): "
            "billed with GZ, the clinic bears the denial; an ABN signed before treatment makes "
            "it GA",
        ),
        (
            make_doc(decompression=True, abn=AbnStatus.SIGNED),
            MEDICARE,
            "DECOMPRESSION_NOT_COVERED",
            "Medicare Part B does not cover vertebral axial decompression (billed as 97012): "
            "expect a denial; the patient is liable",
        ),
        (
            make_doc(decompression=True, payer="cigna-example", prior_active_care_weeks=3),
            CIGNA,
            "DECOMPRESSION_NOT_COVERED",
            "Commercial example (Cigna-like policy) does not cover vertebral axial decompression "
            "(billed as S9090): expect a denial; the patient is liable",
        ),
        (
            make_doc(abn=AbnStatus.NOT_OBTAINED),
            MEDICARE,
            "ABN_GA_GZ",
            "a denial is expected and no ABN is signed: the line carries GZ and the patient "
            "cannot be billed; have the patient sign an ABN (GA) before the next visit",
        ),
        (
            make_doc(payer="cigna-example"),
            CIGNA,
            "PRIOR_CARE_NOT_DOCUMENTED",
            "Commercial example (Cigna-like policy) covers traction after 3 weeks of failed "
            "active care: document them",
        ),
        (
            make_doc(same_day_codes=("97999",)),
            MEDICARE,
            "NCCI_BUNDLED",
            "97012 is never billed separately with 97999 (NCCI indicator 0): bill one of them",
        ),
        (
            make_doc(same_day_codes=("97140",)),
            MEDICARE,
            "NCCI_BUNDLED",
            "97012 and 97140 are an NCCI pair: document the distinct region or encounter "
            "(XS/XE/XP/XU) or do not bill 97012",
        ),
    ]


@pytest.mark.parametrize("case", range(9))
def test_each_payer_finding_of_a_kind_says_exactly_what_to_fix(case: int) -> None:
    doc, payer, code, message = payer_findings()[case]
    finding = only(check_readiness([doc], payer, ncci_pairs=NCCI_PAIRS), code)
    assert (finding.message, finding.session_id) == (message, "s1")


def test_treatment_minutes_below_the_payer_minimum_say_both_numbers() -> None:
    doc = make_doc(minutes=10, payer="cigna-example", prior_active_care_weeks=3)
    finding = only(check_readiness([doc], CIGNA), "MINUTES_BELOW_PAYER_MIN")
    assert finding.message == (
        f"{doc.delivered.treatment_minutes} min of traction delivered; Commercial example "
        "(Cigna-like policy) expects at least 15 min"
    )


# --- encounters, spending and assistants ----------------------------------------------------------


def test_encounter_findings_say_exactly_what_happens_and_where() -> None:
    morning = make_doc("s1", start=datetime(2025, 3, 14, 9, 0, tzinfo=UTC), signature=None)
    afternoon = make_doc("s2", start=datetime(2025, 3, 14, 15, 0, tzinfo=UTC))
    found = check_readiness([morning, afternoon], MEDICARE)
    units = only(found, "UNITS_PER_DOS")  # the blocked morning is documented; the ready one bills
    assert units.session_id == "s1" and units.message == (
        "97012 is one unit per patient per date of service: session s1 is documented, not billed "
        "(the unit is on session s2)"
    )
    assert only(found, "NO_SIGNATURE").session_id == "s1"  # every doc's own findings are kept
    unknown = make_doc("s5", start=datetime(2027, 2, 1, 9, 0, tzinfo=UTC))
    finding = only(check_readiness([unknown], MEDICARE), "KX_THRESHOLD_UNKNOWN")
    assert (finding.message, finding.session_id) == (
        "Medicare Part B has no KX threshold for 2027: add it to configs/payers.toml",
        "s5",
    )
    found = check_readiness([make_doc("s6")], MEDICARE, Decimal("2995"))
    assert only(found, "KX_REQUIRED").message.endswith(
        ": KX is appended; the record must support continued medical necessity"
    )
    review = only(found, "TARGETED_REVIEW")
    assert review.session_id == "s6" and review.message == (
        f"therapy spending reaches ${Decimal('2995') + FEE}, above $3000.00: the claim may be "
        "selected for targeted medical review"
    )


def test_spending_given_per_patient_and_year_is_asked_for_each() -> None:
    asked: list[tuple[str, int]] = []

    def spend(patient_ref: str, year: int) -> Decimal:
        asked.append((patient_ref, year))
        return Decimal("2400") if patient_ref == "P-100" else Decimal(0)

    docs = [make_doc("s1"), make_doc("s2", patient_ref="P-200")]
    assert [line.modifiers for line in billing_lines(docs, MEDICARE, spend)] == [
        ("GP", "KX"),
        ("GP",),
    ]
    assert set(asked) == {("P-100", 2025), ("P-200", 2025)}


def test_an_assistant_without_a_supervising_therapist_blocks_naming_who_to_record() -> None:
    from session.documentation import Clinician
    from session.models import Discipline

    pta = Clinician(name="Ana Ruiz", credentials="PTA", discipline=Discipline.PTA, npi="1710000006")
    doc = make_doc(treating=pta, supervising=None)
    finding = only(check_readiness([doc], MEDICARE), "ASSISTANT_NO_SUPERVISOR")
    assert finding.message == (
        "Ana Ruiz is a PTA: record the supervising PT (supervising_clinician_id), who is the "
        "rendering provider"
    )
    no_modifier = MEDICARE.model_copy(
        update={"assistant_modifiers": {}, "assistant_payment_percent": 85}
    )
    assert "ASSISTANT_PAYMENT" not in codes(check_readiness([doc], no_modifier))
