"""WCAG 2.1 AA on every console page, measured in the real browser: axe-core's WCAG 2.1 A/AA
rules, then checks computed from the page itself (tests/a11y_checks.js): the contrast of every
visible text against its effective background (4.5:1, large text 3:1), control boundaries (3:1),
every interactive element reachable by Tab with a visible focus indicator of 3:1, labels, text
alternatives, lang and title. Pages are loaded with the states that show most: a running session,
a locked table, a held and a ready claim, a refused settings change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import WORKSTATION, World, make_world, prescription, steady_bounds
from billing_records import people, record
from console_support import EXPECT_MS, PASSWORD, chromium, served
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, expect

from session.lockouts import Lockouts, TableRef
from session.passwords import Passwords
from traction.api import create_app

CHECKS = (Path(__file__).parent / "a11y_checks.js").read_text(encoding="utf-8")
AXE = (files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
DAY = datetime(2026, 3, 14, 14, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_db_url: str) -> Iterator[World]:
    world = make_world(tmp_path_factory.mktemp("console-a11y"), module_db_url)
    Passwords(world.store.engine).set("clinician", PASSWORD)
    patient, pt = people(world.store, "A11Y-1")
    record(world.store, "a11y-ready", patient, pt, DAY)
    record(world.store, "a11y-held", patient, pt, DAY + timedelta(days=1), sign=False)
    Lockouts(world.store.engine).lock(
        TableRef(WORKSTATION, "table-2", "sim://spare?seed=7"),
        fault="hard_limit",
        reason="measured 250.0 N above the hard limit 200.0 N",
        session_id="run-a11y",
    )
    yield world
    world.close()


@pytest.fixture(scope="module")
def app(world: World) -> FastAPI:
    app = create_app(world.settings)
    return app


@pytest.fixture(scope="module")
def base(world: World, app: FastAPI) -> Iterator[str]:
    # A loaded CI machine must not trip the session these pages show: not a starved host, nor
    # the simulated table answering late while the worker's interpreter hands axe's results on.
    with served(world.settings, app) as url, steady_bounds(app.state.service):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def running(base: str, world: World) -> Iterator[str]:
    """A session running on table-1 while the live page is checked; released after."""
    body = prescription(world, "table-1", profile=DEMO_LONG, profile_name=None)
    started = httpx.post(
        f"{base}/sessions", json=body, headers=world.headers("clinician"), timeout=30
    )
    assert started.status_code == 201, started.text
    session_id: str = started.json()["id"]
    yield session_id
    httpx.post(
        f"{base}/sessions/{session_id}/release", headers=world.headers("clinician"), timeout=30
    )


DEMO_LONG = {  # the demo profile, long enough to outlast the checks on a loaded machine
    "mode": "intermittent",
    "region": "lumbar",
    "hold_force": "35 lbf",
    "rest_force": "15 lbf",
    "hold_s": 15,
    "rest_s": 10,
    "total_min": 10,
    "ramp_rate": "5 lbf/s",
}


def check(page: Page, name: str) -> Any:
    return page.evaluate(f"(\n{CHECKS}\n).{name}()")


def axe_violations(page: Page) -> list[str]:
    page.evaluate(AXE)
    options = json.dumps({"runOnly": {"type": "tag", "values": WCAG_21_AA}})
    result = page.evaluate(f"axe.run(document, {options})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']}: "
        + "; ".join(" ".join(n["target"]) for n in v["nodes"][:5])
        for v in result["violations"]
    ]


def tab_through(page: Page) -> list[str]:
    """Tab from the top of the page through every interactive element; the problems found."""
    tagged = check(page, "tag")
    assert tagged, "no interactive element on the page"
    page.locator("body").focus()
    reached: dict[int, dict[str, Any]] = {}
    for _ in range(len(tagged) + 5):
        page.keyboard.press("Tab")
        now = check(page, "focused")
        if now is not None:
            reached.setdefault(now["index"], now)
    problems = []
    for item in tagged:
        seen = reached.get(item["index"])
        if seen is None:
            problems.append(f"{item['what']}: not reachable by Tab")
            continue
        rest, focused = item["rest"], seen["now"]
        if (rest["outline"], rest["shadow"]) == (focused["outline"], focused["shadow"]):
            problems.append(f"{item['what']}: no focus indicator (outline and shadow unchanged)")
        elif seen["contrast"] < 3:
            problems.append(f"{item['what']}: focus indicator contrast {seen['contrast']:.2f} < 3")
    return problems


def audit(page: Page) -> None:
    """Every check on the page as it is now; fails listing every problem found."""
    problems = [f"axe: {v}" for v in axe_violations(page)]
    for name in ("document", "contrast", "components", "labels"):
        problems += check(page, name)
    problems += tab_through(page)
    assert not problems, f"{page.url}:\n" + "\n".join(problems)


def new_page(browser: Browser, base: str) -> Page:
    """Signed in as a clinician (every page but none is closed to it); the CSP is bypassed only
    so the checks can be evaluated in the page, which changes nothing it renders."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    page = context.new_page()
    sign_in_on(page, base)
    return page


def sign_in_on(page: Page, base: str) -> None:
    expect.set_options(timeout=EXPECT_MS)
    page.goto(f"{base}/console/login")
    audit(page)
    page.get_by_label("User name").fill("clinician")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Tables")).to_be_visible()


def test_the_sign_in_page_and_the_board_meet_wcag_21_aa(browser: Browser, base: str) -> None:
    page = new_page(browser, base)  # audits the sign-in page on the way
    card = page.locator(".table-card").filter(has=page.get_by_role("heading", name="table-2"))
    expect(card.get_by_role("alert")).to_contain_text("LOCKED")
    audit(page)
    page.context.close()


def test_the_start_page_meets_wcag_21_aa_with_its_violations_shown(
    browser: Browser, base: str
) -> None:
    page = new_page(browser, base)
    page.goto(f"{base}/console/treat")
    expect(page.locator("#table option")).to_have_count(2)
    page.get_by_role("button", name="Validate").click()  # no patient: refusals shown in place
    expect(page.locator("#violations li").first).to_be_visible()
    audit(page)
    page.context.close()


def test_the_live_view_meets_wcag_21_aa_with_a_refused_change(
    browser: Browser, base: str, running: str, world: World
) -> None:
    page = new_page(browser, base)
    page.goto(f"{base}/console/live/{running}")
    try:
        expect(page.locator("#points")).not_to_have_text("0")
    except AssertionError as exc:  # say whether the session was still running, and if not why
        row = httpx.get(
            f"{base}/sessions/{running}", headers=world.headers("clinician"), timeout=30
        )
        raise AssertionError(f"no live points; the session now: {row.text[:600]}") from exc
    page.get_by_label("Hold force (lbf)").fill("200")
    page.get_by_role("button", name="Apply change").click()
    expect(page.locator("#set-hold_force-error")).to_contain_text("Refused")
    audit(page)
    page.context.close()


def test_the_sessions_and_billing_pages_meet_wcag_21_aa(browser: Browser, base: str) -> None:
    page = new_page(browser, base)
    page.goto(f"{base}/console/sessions")
    expect(page.locator("#rows tr").first).to_be_visible()
    audit(page)
    page.goto(f"{base}/console/billing")
    expect(page.locator("#pending-summary")).to_contain_text("held")
    audit(page)
    page.context.close()


def test_the_checks_find_what_they_look_for(browser: Browser, base: str) -> None:
    """The checks are not vacuous: a page given one of each fault reports each of them."""
    page = new_page(browser, base)
    page.evaluate(
        """() => {
        const main = document.getElementById("main");
        main.insertAdjacentHTML("beforeend",
          '<p id="faint" style="color:#999;background:#fff">faint words</p>' +
          '<input id="nameless">' +
          '<button id="ringless" style="outline:none;border:1px solid #ddd">no ring</button>' +
          '<canvas id="mute"></canvas>');
        document.documentElement.removeAttribute("lang");
    }"""
    )
    problems = [
        *check(page, "document"),
        *check(page, "contrast"),
        *check(page, "components"),
        *check(page, "labels"),
    ]
    text = "\n".join(problems)
    assert "no lang" in text
    assert 'p#faint "faint words": text contrast 2.85 < 4.5' in text
    assert 'input#nameless "" has no label' in text
    assert 'button#ringless "no ring": boundary contrast 1.22 < 3' in text
    assert "canvas#mute" in text and "no text alternative" in text
    focus = tab_through(page)
    assert 'button#ringless "no ring": no focus indicator (outline and shadow unchanged)' in focus
    page.context.close()
