"""The billing page in a real browser: what waits to be billed (ready, or held with every finding
and who must fix it), the pull of what is new through the same claim run as the API (each line
goes out once), the download of what was pulled, and a void."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from api_support import World, make_world
from billing_records import people, record
from console_support import PASSWORD, chromium, screenshot_dir, served, sign_in
from playwright.sync_api import Browser, expect

from session.ledger import ClaimsLedger
from session.passwords import Passwords

DAY = datetime(2026, 3, 14, 14, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_db_url: str) -> Iterator[World]:
    world = make_world(tmp_path_factory.mktemp("console-billing"), module_db_url)
    passwords = Passwords(world.store.engine)
    for user in ("technician", "billing"):
        passwords.set(user, PASSWORD)
    patient, pt = people(world.store, "BILL-1")
    record(world.store, "con-ready", patient, pt, DAY)
    record(world.store, "con-held", patient, pt, DAY + timedelta(days=1), sign=False)
    yield world
    world.close()


@pytest.fixture(scope="module")
def base(world: World) -> Iterator[str]:
    with served(world.settings) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def test_billing_pulls_what_is_new_once_and_keeps_held_lines_with_their_findings(
    browser: Browser, base: str, world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    shots = screenshot_dir(tmp_path_factory.mktemp("screenshots"))
    page = sign_in(browser, base, "billing")
    page.get_by_role("link", name="Billing").click()
    summary = page.locator("#pending-summary")
    expect(summary).to_have_text("1 ready, 1 held, 0 on another session's line.")
    ready = page.locator("#pending tr[data-session='con-ready']")
    held = page.locator("#pending tr[data-session='con-held']")
    expect(ready).to_contain_text("Ready")
    expect(held).to_contain_text("Held")
    expect(held).to_contain_text("Blocks: NO_SIGNATURE")
    expect(held.locator("li.block strong").first).to_have_text("Dana Reyes")

    page.get_by_role("button", name="Bill and pull what is new").click()
    pulled = page.locator("#pulled-summary")
    expect(pulled).to_contain_text("1 new line(s) sent, 1 held")
    expect(page.locator("#pulled tr")).to_have_count(1)
    [line] = ClaimsLedger(world.store.engine).lines_after(0)
    expect(page.locator("#pulled tr").first).to_contain_text(f"{line.id}original")
    expect(summary).to_have_text("0 ready, 1 held, 0 on another session's line.")
    expect(held).to_contain_text("NO_SIGNATURE")
    page.screenshot(path=shots / "billing.png", full_page=True)

    with page.expect_download() as csv:
        page.get_by_role("link", name="Claim lines (CSV)").click()
    text = Path(csv.value.path()).read_text(encoding="utf-8")
    assert "97012" in text and "claim_line_id" in text and str(line.id) in text
    with page.expect_download() as x12:
        page.get_by_role("link", name="Claims (837P)").click()
    assert f"TRC{line.id}" in Path(x12.value.path()).read_text(encoding="utf-8")

    page.get_by_role("button", name="Bill and pull what is new").click()
    expect(pulled).to_contain_text("0 new line(s) sent, 1 held")  # each line goes out once
    expect(page.locator("#pulled tr")).to_have_count(0)
    expect(page.locator("#run-files")).to_be_hidden()
    assert len(ClaimsLedger(world.store.engine).lines_after(0)) == 1

    page.get_by_label("Claim line").fill(str(line.id))
    page.get_by_role("button", name="Void").click()
    result = page.locator("#line-result")
    expect(result).to_contain_text("Give the claim line number and why.")
    expect(page.get_by_label("Why")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Why").fill("duplicate of a paper claim")
    page.get_by_role("button", name="Void").click()
    expect(result).to_contain_text(f"void (frequency 8) of line {line.id}")
    page.get_by_role("button", name="Void").click()
    expect(result).to_contain_text("void")  # a second void is refused in the API's words
    expect(result).not_to_contain_text("frequency 8) of line")
    page.close()


def test_a_technician_gets_no_billing_page(browser: Browser, base: str) -> None:
    page = sign_in(browser, base, "technician")
    response = page.goto(f"{base}/console/billing")
    assert response is not None and response.status == 403
    refused = page.request.get(f"{base}/claims/pending")
    assert refused.status == 403
    page.close()
