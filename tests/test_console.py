"""The clinic console in a real browser (Debian's chromium, driven by Playwright), against a real
server with simulated tables: sign-in per role, a treatment watched live, controls, signing, and
billing downloads. Every page is screenshotted."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import WORKSTATION, World, make_world, prescription, steady_bounds
from console_support import PASSWORD, TIMEOUT_MS, chromium, screenshot_dir, served, sign_in
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, expect

from devices.faults import FAULTS
from session.lockouts import Lockouts, TableRef
from session.passwords import Passwords
from traction.api import create_app
from traction.service import WorkstationService


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_db_url: str) -> Iterator[World]:
    world = make_world(tmp_path_factory.mktemp("console"), module_db_url)
    passwords = Passwords(world.store.engine)
    for user in ("technician", "clinician", "billing", "admin"):
        passwords.set(user, PASSWORD)
    yield world
    world.close()


@pytest.fixture(scope="module")
def app(world: World) -> FastAPI:
    return create_app(world.settings)


@pytest.fixture(scope="module")
def base(world: World, app: FastAPI) -> Iterator[str]:
    with served(world.settings, app) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshot_dir(tmp_path_factory.mktemp("screenshots"))


def nav_titles(page: Page) -> list[str]:
    return (
        page.get_by_role("navigation", name="Console pages").get_by_role("link").all_inner_texts()
    )


def wait_for_points(page: Page, more_than: int) -> None:
    """Poll the live page's point counter (the page's CSP forbids evaluating test code in it)."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while int(page.locator("#points").inner_text()) <= more_than:
        assert time.monotonic() < deadline, f"the chart never got more than {more_than} points"
        page.wait_for_timeout(100)


def test_a_wrong_password_is_refused_in_words(browser: Browser, base: str) -> None:
    page = browser.new_page()
    page.goto(f"{base}/console/login")
    page.get_by_label("User name").fill("clinician")
    page.get_by_label("Password").fill("not the passphrase")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("wrong user name or password")
    page.close()


@pytest.mark.parametrize(
    ("role", "pages"),
    [
        ("technician", ["Tables", "Start", "Sessions"]),
        ("clinician", ["Tables", "Start", "Sessions", "Billing"]),
        ("billing", ["Tables", "Sessions", "Billing"]),
        ("admin", ["Tables", "Sessions"]),
    ],
)
def test_each_role_sees_the_pages_it_may_use(
    browser: Browser, base: str, shots: Path, role: str, pages: list[str]
) -> None:
    page = sign_in(browser, base, role)
    assert nav_titles(page) == pages
    expect(page.locator(".table-card")).to_have_count(2)
    page.screenshot(path=shots / f"board-{role}.png", full_page=True)
    page.close()


def test_a_technician_gets_no_billing_page_even_by_its_address(
    browser: Browser, base: str, shots: Path
) -> None:
    page = sign_in(browser, base, "technician")
    response = page.goto(f"{base}/console/billing")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="Not for your role")).to_be_visible()
    page.screenshot(path=shots / "forbidden.png")
    page.close()


def test_a_page_request_without_its_csrf_token_changes_nothing(world: World, base: str) -> None:
    with httpx.Client(base_url=base) as http:
        signed = http.post("/console/login", json={"user": "clinician", "password": PASSWORD})
        assert signed.status_code == 200
        cookie = signed.cookies.get("traction_console")
        assert cookie and "HttpOnly" in signed.headers["set-cookie"]
        assert "SameSite=strict" in signed.headers["set-cookie"]
        assert "Secure" in signed.headers["set-cookie"]
        http.cookies.clear()
        jar = {"Cookie": f"traction_console={cookie}"}  # as a browser sends it
        assert http.get("/tables", headers=jar).status_code == 200
        refused = http.post("/sessions/validate", json={}, headers=jar)
        assert refused.status_code == 403 and "x-csrf-token" in refused.json()["detail"]
        foreign = http.get("/tables", headers={**jar, "Origin": "http://evil.example"})
        assert foreign.status_code == 403
        assert http.get("/tables").status_code == 401


def test_start_watch_pause_resume_and_release_a_treatment(
    browser: Browser, base: str, world: World, shots: Path
) -> None:
    page = sign_in(browser, base, "clinician")
    page.get_by_role("link", name="Start").click()
    expect(page.get_by_role("heading", name="Start a treatment")).to_be_visible()
    expect(page.locator("#table option")).to_have_count(2)
    page.get_by_label("Patient reference").fill(world.patient_ref)
    page.get_by_label("Diagnosis codes").fill("M51.16")
    page.get_by_label("Medical necessity").fill("Radiculopathy; traction per POC goal 2")
    page.get_by_label("Plan of care").fill("POC-17")
    start = page.get_by_role("button", name="Start")
    expect(start).to_be_disabled()
    page.get_by_role("button", name="Validate").click()
    expect(start).to_be_enabled()
    page.screenshot(path=shots / "start.png", full_page=True)
    start.click()
    expect(page).to_have_url(re.compile(r"/console/live/"))
    points = page.locator("#points")
    expect(points).not_to_have_text("0")
    wait_for_points(page, 20)
    expect(page.locator("#limit")).to_contain_text("lbf")
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#status")).to_have_text("paused: force held")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#status")).to_have_text("running")
    page.screenshot(path=shots / "live.png", full_page=True)
    page.keyboard.press("Escape")  # the release shortcut, from anywhere on the page
    expect(page.locator("#status")).to_contain_text("the table is released")
    session_id = page.url.rsplit("/", 1)[-1]
    # the treatment process has let go; the record is complete once it is sealed, and the session
    # page shows the record as it is when the page loads
    sealed(base, world, session_id)
    page.goto(f"{base}/console/sessions/{session_id}")
    expect(page.locator("#facts")).to_contain_text("stopped")
    started = world.store.get_session(session_id).started_at.astimezone(UTC)
    # the clinic's clock with its zone named, as the command line prints it
    expect(page.locator("#facts")).to_contain_text(f"{started:%Y-%m-%d %H:%M} UTC")
    page.get_by_role("button", name="Sign the note").click()
    expect(page.locator("#facts")).not_to_contain_text("not signed")
    page.screenshot(path=shots / "session.png", full_page=True)
    page.close()


def test_billing_downloads_a_finished_sessions_documents(
    browser: Browser, base: str, shots: Path
) -> None:
    page = sign_in(browser, base, "billing")
    page.get_by_role("link", name="Billing").click()
    link = page.locator("a.download", has_text="JSON").first
    expect(link).to_be_visible()
    with page.expect_download() as download:
        link.click(modifiers=["Alt"])
    assert download.value.suggested_filename.endswith(".json")
    page.screenshot(path=shots / "billing-documents.png", full_page=True)
    page.close()


def test_a_locked_table_shows_its_alarm_until_a_clinician_acknowledges_it(
    browser: Browser, base: str, world: World, shots: Path
) -> None:
    lockouts = Lockouts(world.store.engine)
    lockouts.lock(
        TableRef(WORKSTATION, "table-2", "sim://spare?seed=7"),
        fault="hard_limit",
        reason="measured 250.0 N above the hard limit 200.0 N",
        session_id="run-console",
    )
    page = sign_in(browser, base, "clinician")
    card = page.locator(".table-card").filter(has=page.get_by_role("heading", name="table-2"))
    alarm = card.get_by_role("alert")
    expect(alarm).to_have_text(
        "LOCKED: force above the session's hard limit: measured 250.0 N above the hard limit "
        "200.0 N. Check the patient and the table, then acknowledge."
    )
    page.screenshot(path=shots / "board-locked.png", full_page=True)
    card.get_by_label("Why it is safe to go on").fill("patient checked; motor driver inspected")
    card.get_by_role("button", name="Acknowledge").click()
    expect(alarm).to_be_hidden()
    expect(card.locator(".ack")).to_be_hidden()
    [event] = [e for e in lockouts.history(WORKSTATION, "table-2") if e.kind == "acknowledged"]
    assert (event.who, event.why) == (
        "clinician (clinician)",
        "patient checked; motor driver inspected",
    )
    page.close()


@pytest.fixture
def steady(app: FastAPI) -> Iterator[WorkstationService]:
    """The app's service on :func:`api_support.steady_bounds`: the browser shares the cores, and
    Playwright the interpreter the simulated tables answer from."""
    with steady_bounds(app.state.service) as svc:
        yield svc


def start_by_api(base: str, world: World, table: str = "table-1") -> str:
    """A demo session started through the API, as another workstation's operator would."""
    started = httpx.post(
        f"{base}/sessions",
        json=prescription(world, table),
        headers=world.headers("clinician"),
        timeout=30,
    )
    assert started.status_code == 201, started.text
    session_id: str = started.json()["id"]
    return session_id


def sealed(base: str, world: World, session_id: str) -> dict[str, Any]:
    """The session's detail once it is recorded and sealed, and so its table free again."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        detail: dict[str, Any] = httpx.get(
            f"{base}/sessions/{session_id}?limit=1", headers=world.headers("clinician"), timeout=30
        ).json()
        if detail["sealed"] and not detail["running"]:
            return detail
        assert time.monotonic() < deadline, f"session {session_id} never sealed: {detail}"
        time.sleep(0.1)


@pytest.mark.backend("postgresql")
def test_a_live_settings_change_is_refused_field_by_field_then_applied_to_the_target(
    browser: Browser, base: str, world: World, shots: Path, steady: WorkstationService
) -> None:
    session_id = start_by_api(base, world)
    page = sign_in(browser, base, "clinician")
    page.goto(f"{base}/console/live/{session_id}")
    expect(page.locator("#points")).not_to_have_text("0")
    hold = page.get_by_label("Hold force (lbf)")
    expect(hold).to_have_value("35")  # the demo profile's, read from the started record
    hold.fill("200")
    page.get_by_label("Hold time (s)").fill("six")
    page.get_by_role("button", name="Apply change").click()
    expect(page.locator("#set-hold_s-error")).to_contain_text("Refused")
    expect(page.get_by_label("Hold time (s)")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Hold time (s)").fill("6")
    page.get_by_label("Total time (min)").fill("4")
    page.get_by_role("button", name="Apply change").click()
    hold_error = page.locator("#set-hold_force-error")
    expect(hold_error).to_contain_text("Refused: hold_force 200")
    expect(hold).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#set-hold_s-error")).to_have_text("")
    expect(page.locator("#status")).to_have_text("running")  # refused: the session runs on

    hold.fill("25")
    page.get_by_label("Rest force (lbf)").fill("10")
    page.get_by_label("Rest time (s)").fill("5")
    page.get_by_label("Why the change").fill("patient asked for less")
    page.get_by_role("button", name="Apply change").click()
    expect(hold_error).to_have_text("")
    expect(hold).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("#profile-now")).to_contain_text("hold 25.0 lbf for 6 s, rest 10.0 lbf")
    expect(page.locator("#target")).to_have_text("25.0 lbf")  # the curve follows the change
    page.locator("header.top").scroll_into_view_if_needed()  # the controls bar at the top
    page.screenshot(path=shots / "live-settings.png", full_page=True)
    page.get_by_role("button", name="Release now (Esc)").click()
    expect(page.locator("#status")).to_contain_text("the table is released")
    page.close()
    detail = sealed(base, world, session_id)
    [change] = [e for e in detail["events"] if e["kind"] == "settings_changed"]
    assert change["reason"] == "settings changed (patient asked for less (clinician))"


def test_a_trip_is_shown_in_words_on_the_live_view_and_the_board_until_acknowledged(
    browser: Browser, base: str, world: World, shots: Path, steady: WorkstationService
) -> None:
    svc = steady
    shipped = svc.limits
    # A runaway motor, with the over-target and tracking checks widened so the hard limit trips.
    svc.limits = replace(
        shipped,
        supervisor=replace(
            shipped.supervisor, over_target_tolerance_n=1000.0, tracking_time_s=60.0
        ),
    )
    model = svc.slots["table-1"].opened.models[1]
    model.faults.runaway = True
    page = sign_in(browser, base, "clinician")
    try:
        session_id = start_by_api(base, world)
        page.goto(f"{base}/console/live/{session_id}")
        alarm = page.locator("#alarm")
        expect(alarm).to_contain_text("Table table-1 is LOCKED:")
        expect(page.locator("#status")).to_contain_text("finished (tripped)")
    finally:
        model.faults.runaway = False
        svc.limits = shipped
    [lock] = Lockouts(world.store.engine).active(WORKSTATION, "table-1")
    title = FAULTS[lock.fault].title  # the runaway trips the host's hard limit or the table's
    words = lock.reason if title in lock.reason else f"{title}: {lock.reason}"
    expect(alarm).to_contain_text(f"Table table-1 is LOCKED: {words}. No session starts")
    page.screenshot(path=shots / "live-tripped.png", full_page=True)
    page.reload()  # read back from the store: still there until someone acknowledges
    expect(alarm).to_contain_text(f"Table table-1 is LOCKED: {words}.")

    board = sign_in(browser, base, "technician")
    card = board.locator(".table-card").filter(has=board.get_by_role("heading", name="table-1"))
    expect(card.get_by_role("alert")).to_contain_text(f"LOCKED: {words}. Check the patient")

    why = page.get_by_label("What was checked, and why the table may run again")
    page.get_by_role("button", name="Acknowledge").click()  # no reason: refused in place
    expect(why).to_have_attribute("aria-invalid", "true")
    expect(why).to_be_focused()
    why.press_sequentially("patient checked; motor driver inspected")
    why.press("Enter")
    expect(page.locator("#ack-done")).to_have_text(
        "Acknowledged by clinician (clinician): patient checked; motor driver inspected"
    )
    expect(card.get_by_role("alert")).to_be_hidden()
    history = Lockouts(world.store.engine).history(WORKSTATION, "table-1")
    assert [(e.kind, e.who, e.why) for e in history][-1] == (
        "acknowledged",
        "clinician (clinician)",
        "patient checked; motor driver inspected",
    )
    board.close()
    page.close()
