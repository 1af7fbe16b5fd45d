"""Plans of care: a dose per patient with every version kept, the per-session progression it
suggests, `traction run` taking its dose (changed for one session, re-validated), and the plan
over HTTP with the roles of patient edits. On SQLite and PostgreSQL (``db_url``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from api_support import TestClient, World, errors, make_world, running_client
from bounds_support import steady_command_line
from cli_support import cli, sign_in
from conftest_db import dispose_engines, query

from devices.profiles import ForceProfile, Mode, ProfileError, Region
from devices.records import Outcome
from devices.units import N_PER_LBF, ForceUnit
from session.db import make_engine, upgrade
from session.errors import StoreError
from session.plans import CarePlans, Progression, next_step
from session.store import Store
from traction.dose import DoseChange
from traction.exitcodes import Exit

LBF = N_PER_LBF


def dose(hold: float = 30.0, rest: float = 15.0) -> ForceProfile:
    return ForceProfile(
        mode=Mode.INTERMITTENT,
        region=Region.LUMBAR,
        hold_force_n=hold * LBF,
        rest_force_n=rest * LBF,
        hold_s=15.0,
        rest_s=10.0,
        total_s=120.0,
        ramp_n_per_s=5 * LBF,
        progression_steps=1,
        regression_steps=1,
        unit=ForceUnit.LBF,
    )


# ----- the progression rule -------------------------------------------------------------------
def test_a_completed_session_suggests_the_next_step_with_rest_in_proportion() -> None:
    rule = Progression(5 * LBF, 45 * LBF)
    step = next_step(dose(), rule, Outcome.COMPLETED, ForceUnit.LBF)
    assert step.dose is not None
    assert step.dose.hold_force_n == pytest.approx(35 * LBF)
    assert step.dose.rest_force_n == pytest.approx(17.5 * LBF)
    assert step.text == (
        "if tolerated, next session hold 35.0 lbf, rest 17.5 lbf (+5.0 lbf, goal 45.0 lbf)"
    )


def test_the_step_stops_at_the_goal_and_the_goal_is_kept() -> None:
    rule = Progression(5 * LBF, 33 * LBF)
    step = next_step(dose(), rule, Outcome.COMPLETED, ForceUnit.LBF)
    assert step.dose is not None and step.dose.hold_force_n == pytest.approx(33 * LBF)
    at_goal = next_step(dose(33.0), rule, Outcome.COMPLETED, ForceUnit.LBF)
    assert at_goal.dose is None and at_goal.text == "the plan is at its goal hold force 33.0 lbf"


@pytest.mark.parametrize("outcome", [Outcome.STOPPED, Outcome.TRIPPED, Outcome.INTERRUPTED])
def test_a_session_that_did_not_complete_keeps_the_dose(outcome: Outcome) -> None:
    step = next_step(dose(), Progression(5 * LBF, 45 * LBF), outcome, ForceUnit.LBF)
    assert step.dose is None
    assert step.text == f"the session was {outcome.value}: keep the dose until reviewed"


def test_without_a_progression_the_plan_keeps_its_dose() -> None:
    step = next_step(dose(), None, Outcome.COMPLETED, ForceUnit.LBF)
    assert step.dose is None and "keeps this dose" in step.text


# ----- changing a dose for one session -----------------------------------------------------------
def test_a_dose_change_rebuilds_the_profile() -> None:
    changed = DoseChange("40 lbf", "20 lbf", 20.0, 12.0, 3.0).apply(dose(), ForceUnit.KGF)
    assert changed.hold_force_n == pytest.approx(40 * LBF)
    assert changed.rest_force_n == pytest.approx(20 * LBF)
    assert (changed.hold_s, changed.rest_s, changed.total_s) == (20.0, 12.0, 180.0)
    assert changed.unit is ForceUnit.KGF and changed.region is Region.LUMBAR
    same = dose()
    assert DoseChange().apply(same) is same


@pytest.mark.parametrize(
    ("change", "option", "words"),
    [
        (DoseChange(rest_force="35 lbf"), "--rest-force", "below the hold force 30 lbf"),
        (DoseChange(minutes=1.0), "--minutes", "too short for 1 progression"),
        (DoseChange(hold_s=0.5), "--hold-s", "must be at least 1 s"),
    ],
)
def test_a_bad_dose_change_names_the_option(change: DoseChange, option: str, words: str) -> None:
    with pytest.raises(ProfileError) as info:
        change.apply(dose())
    [problem] = info.value.problems
    assert problem.field == option and words in problem.rule, problem


def test_a_force_without_its_unit_is_refused() -> None:
    with pytest.raises(Exception, match="has no unit|cannot read force"):
        DoseChange(hold_force="40").apply(dose())


# ----- the store --------------------------------------------------------------------------------
@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    upgrade(db_url)
    engine = make_engine(db_url)
    the_store = Store(engine)
    the_store.add_patient("MRN-1", 70.0, sex="female")
    yield the_store
    the_store.close()
    engine.dispose()


def test_every_version_is_kept_with_who_when_and_why(store: Store) -> None:
    plans = CarePlans(store.engine)
    assert plans.history("MRN-1") == []
    with pytest.raises(StoreError, match="has no plan of care; set one with `traction plans set"):
        plans.current("MRN-1")
    first = plans.set("MRN-1", dose(), Progression(5 * LBF, 45 * LBF), by="dreyes", why="eval")
    second = plans.set("MRN-1", dose(35.0, 17.5), None, by="kpark", why="re-eval")
    assert (first.version, second.version) == (1, 2)
    history = plans.history("MRN-1")
    assert [(v.version, v.by, v.why) for v in history] == [
        (1, "dreyes", "eval"),
        (2, "kpark", "re-eval"),
    ]
    assert history[0].profile("MRN-1").hold_force_n == pytest.approx(30 * LBF)
    assert history[0].step_n == pytest.approx(5 * LBF) and history[1].step_n is None
    current = plans.current("MRN-1")
    assert current.version == 2 and current.at.tzinfo is not None
    assert current.profile("MRN-1") == replace(dose(35.0, 17.5), name="MRN-1 plan v2")
    assert current.profile("MRN-1").name == "MRN-1 plan v2"


def test_a_plan_needs_a_why_a_known_patient_and_a_rising_progression(store: Store) -> None:
    plans = CarePlans(store.engine)
    with pytest.raises(StoreError, match="why: say why"):
        plans.set("MRN-1", dose(), None, by="dreyes", why="  ")
    with pytest.raises(StoreError, match="no patient with reference 'MRN-9'"):
        plans.set("MRN-9", dose(), None, by="dreyes", why="eval")
    with pytest.raises(Exception, match="goal 25.0 lbf is below the hold force 30.0 lbf"):
        plans.set("MRN-1", dose(), Progression(5 * LBF, 25 * LBF), by="dreyes", why="eval")
    assert plans.history("MRN-1") == []


# ----- the command line -------------------------------------------------------------------------
SCALE = "5"  # no faster: at x5 a session ticks 250 times a second of real time


@pytest.fixture
def data_dir(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("TRACTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRACTION_DATABASE_URL", db_url)
    steady_command_line(monkeypatch)
    monkeypatch.setenv("COLUMNS", "200")
    yield tmp_path
    dispose_engines()


def people() -> None:
    code, out = cli("patients", "add", "MRN-1", "--weight", "180 lb", "--sex", "female")
    assert code == 0, out
    code, out = cli(
        "clinicians", "add", "Dana Reyes", "--credentials", "PT, DPT", "--discipline", "PT"
    )
    assert code == 0, out


PLAN = (
    "plans", "set", "MRN-1", "--profile", "demo", "--hold-force", "30 lbf", "--rest-force",
    "15 lbf", "--step", "5 lbf", "--up-to", "45 lbf", "--why", "initial evaluation",
)  # fmt: skip


def test_plans_set_show_and_advance_from_the_command_line(data_dir: Path) -> None:
    people()
    code, out = cli("plans", "show", "MRN-1")
    assert code == Exit.USAGE and "has no plan of care" in out
    code, out = cli(*PLAN)
    assert code == Exit.USAGE and "traction login" in out  # nobody signed in: nothing saved
    sign_in("dreyes", clinician=1)
    code, out = cli(*PLAN)
    assert code == 0, out
    assert (
        "version 1" in out and "lumbar intermittent 30.0 lbf / 15.0 lbf, 15 s / 10 s, 2 min" in out
    )
    assert "+5.0 lbf per completed session, up to 45.0 lbf" in out
    code, out = cli("plans", "set", "MRN-1", "--minutes", "3", "--why", "longer sessions")
    assert code == 0 and "version 2" in out and "30.0 lbf / 15.0 lbf, 15 s / 10 s, 3 min" in out
    assert "up to 45.0 lbf" in out  # the progression carries over
    code, out = cli("plans", "advance", "MRN-1", "--why", "tolerated 30 lbf")
    assert code == 0 and "version 3" in out and "35.0 lbf / 17.5 lbf, 15 s / 10 s, 3 min" in out
    code, out = cli("plans", "show", "MRN-1")
    assert code == 0, out
    for why in ("initial evaluation", "longer sessions", "tolerated 30 lbf"):
        assert why in out
    assert "if tolerated, next session hold 40.0 lbf" in out


def test_a_plan_that_breaks_a_limit_is_refused_and_not_saved(data_dir: Path) -> None:
    people()
    sign_in("dreyes", clinician=1)
    code, out = cli(
        "plans", "set", "MRN-1", "--profile", "demo", "--hold-force", "45 kgf",
        "--rest-force", "20 kgf", "--minutes", "10", "--why", "x",
    )  # fmt: skip
    assert code == Exit.REFUSED, out
    assert "50% of the patient's body weight" in out and "it was not saved" in out
    assert query(os.environ["TRACTION_DATABASE_URL"], "SELECT count(*) FROM plan_versions") == [
        (0,)
    ]
    code, out = cli("plans", "set", "MRN-1", "--profile", "demo", "--step", "5 lbf", "--why", "x")
    assert code == Exit.USAGE and "needs both --step and --up-to" in out


@pytest.mark.backend("postgresql")
def test_run_takes_the_plans_dose_and_suggests_the_next_step(data_dir: Path) -> None:
    people()
    sign_in("dreyes", clinician=1)
    assert cli(*PLAN)[0] == 0
    code, out = cli("run", "--patient", "MRN-1", "--clinician", "1", "--time-scale", SCALE)
    assert code == Exit.OK, out
    assert "hold force 30.0 lbf" in out
    assert "plan of care v1: if tolerated, next session hold 35.0 lbf, rest 17.5 lbf" in out
    assert 'traction plans advance MRN-1 --why "..."' in out
    [(settings,)] = query(os.environ["TRACTION_DATABASE_URL"], "SELECT settings FROM sessions")
    assert "MRN-1 plan v1" in str(settings)


@pytest.mark.backend("sqlite")
def test_run_changes_for_one_session_are_checked_before_anything_moves(data_dir: Path) -> None:
    people()
    sign_in("dreyes", clinician=1)
    assert cli(*PLAN)[0] == 0
    run = ("run", "--patient", "MRN-1", "--clinician", "1", "--time-scale", SCALE)
    code, out = cli(*run, "--rest-force", "35 lbf")
    assert code == Exit.USAGE and "--rest-force" in out and "below the hold force" in out
    code, out = cli(*run, "--hold-force", "39 lbf", "--rest-force", "20 lbf", "--minutes", "0.5")
    assert code == Exit.USAGE and "--minutes" in out
    # above the first-session cap (40 lbf), below the lumbar confirmation force (60 lbf)
    code, out = cli(*run, "--hold-force", "41 lbf", "--rest-force", "20 lbf")
    assert code == Exit.REFUSED, out
    assert "usual cap for lumbar session 1" in out and "nothing was started" in out
    assert "confirmation force" not in out
    # above both: the refusal names the option that confirms a high force, and the figure
    code, out = cli(*run, "--hold-force", "61 lbf", "--rest-force", "20 lbf")
    assert code == Exit.REFUSED, out
    assert "above the lumbar confirmation force 60.0 lbf" in out and "--confirm-force" in out
    assert query(os.environ["TRACTION_DATABASE_URL"], "SELECT count(*) FROM sessions") == [(0,)]
    code, out = cli(*run, "--hold-force", "38 lbf", "--rest-force", "20 lbf", "--minutes", "1.7")
    assert code == Exit.OK, out
    assert "hold force 38.0 lbf" in out
    code, out = cli("plans", "show", "MRN-1")  # the plan itself is unchanged
    assert "version 1" in out and "version 2" not in out and "30.0 lbf / 15.0 lbf" in out


def test_run_without_a_profile_or_a_plan_says_how_to_set_one(data_dir: Path) -> None:
    people()
    code, out = cli("run", "--patient", "MRN-1", "--clinician", "1")
    assert code == Exit.USAGE and "traction plans set MRN-1" in out


# ----- over HTTP ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_db_url: str) -> Iterator[World]:
    world = make_world(tmp_path_factory.mktemp("api-plans"), module_db_url)
    yield world
    world.close()


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    yield from running_client(world)


BODY: dict[str, Any] = {
    "profile_name": "demo",
    "progression": {"step": "5 lbf", "goal": "45 lbf"},
    "why": "initial evaluation",
}


def test_the_plan_over_http_with_the_roles_of_patient_edits(
    client: TestClient, world: World
) -> None:
    url = "/patients/MRN-0001/plan"
    missing = client.get(url, headers=world.headers("technician"))
    assert missing.status_code == 404 and "no plan of care" in missing.json()["detail"]
    for role in ("technician", "billing"):
        assert client.put(url, json=BODY, headers=world.headers(role)).status_code == 403
    saved = client.put(url, json=BODY, headers=world.headers("clinician"))
    assert saved.status_code == 200, saved.text
    plan = saved.json()
    assert (plan["version"], plan["by"], plan["why"]) == (1, "clinician", "initial evaluation")
    assert plan["profile"]["hold_force_n"] == pytest.approx(35 * LBF)
    assert plan["goal_n"] == pytest.approx(45 * LBF)
    assert plan["next_step"].startswith("if tolerated, next session hold 40.0 lbf")
    again = client.put(url, json={**BODY, "why": "admin sets it"}, headers=world.headers("admin"))
    assert again.status_code == 200 and again.json()["version"] == 2
    read = client.get(url, headers=world.headers("billing"))
    assert read.status_code == 200 and read.json()["version"] == 2
    assert client.get("/patients/MRN-9/plan", headers=world.headers("admin")).status_code == 404
    reads = query(
        world.settings.effective_database_url,
        "SELECT user_name FROM access_log WHERE what = 'GET /patients/{reference}/plan'",
    )
    assert sorted(r for (r,) in reads) == ["billing", "technician"]  # each read is in the log


def test_an_unsafe_or_malformed_plan_is_a_422_naming_the_field(
    client: TestClient, world: World
) -> None:
    url, who = "/patients/MRN-0001/plan", world.headers("clinician")
    heavy = {"why": "x", "profile": {
        "mode": "continuous", "region": "lumbar", "hold_force": "60 kgf", "total_min": 10,
        "ramp_rate": "5 lbf/s",
    }}  # fmt: skip
    refused = client.put(url, json=heavy, headers=who)
    assert refused.status_code == 422, refused.text
    assert any("body weight" in v["message"] for v in refused.json()["violations"]), refused.text
    low_goal = {**BODY, "progression": {"step": "5 lbf", "goal": "10 lbf"}}
    [error] = errors(client.put(url, json=low_goal, headers=who))
    assert (
        error["loc"] == ["body", "progression", "goal"] and "below the hold force" in error["msg"]
    )
    no_unit = {**BODY, "progression": {"step": "5", "goal": "45 lbf"}}
    [error] = errors(client.put(url, json=no_unit, headers=who))
    assert (
        error["loc"] == ["body", "progression", "step"] and "cannot read force '5'" in error["msg"]
    )
