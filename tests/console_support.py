"""A real ``traction serve`` app on a loopback port, in a thread, for browser tests."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, expect, sync_playwright

from traction.api import create_app
from traction.settings import Settings

CHROMIUM = (
    os.environ.get("TRACTION_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
)
AS_A_USER = Path(__file__).with_name("chromium_as_a_user")
"""Starts ``CHROMIUM`` unable to raise its own priority (the script says why)."""
PASSWORD = "a long clinic passphrase"
TIMEOUT_MS = 30_000
EXPECT_MS = 20_000
"""How long an expectation waits for the page's state (the machine may be loaded)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def served(settings: Settings, app: FastAPI | None = None) -> Iterator[str]:
    """The app for ``settings`` (or ``app``, to reach its service from the test) served by
    uvicorn on 127.0.0.1; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app or create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="console-server", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.TransportError):
            httpx.get(f"{base}/console/login", timeout=5)
            break
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("the console server never answered")
        time.sleep(0.1)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        assert not thread.is_alive(), "the console server did not stop"


def screenshot_dir(default: Path) -> Path:
    """Where page screenshots go: TRACTION_SCREENSHOTS if set (the README's come from there)."""
    folder = Path(os.environ.get("TRACTION_SCREENSHOTS") or default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def started_as_a_user() -> Iterator[None]:
    """Processes started inside run at a user's priority, as a clinic's browser does, not at the
    priority this worker shares with its simulated tables (tests/conftest.py): a browser rendering
    at that priority would delay the threads the simulator waits for."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    os.setpriority(os.PRIO_PROCESS, 0, max(before, 0))  # lowering needs no privilege
    try:
        yield
    finally:
        with contextlib.suppress(PermissionError):
            os.setpriority(os.PRIO_PROCESS, 0, before)


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's chromium, headless, driven by Playwright (its own browser download is not used).
    Playwright's driver starts at a user's priority, and the browser it launches inherits it and
    cannot raise it (:data:`AS_A_USER`)."""
    with contextlib.ExitStack() as stack:
        with started_as_a_user():
            playwright = stack.enter_context(sync_playwright())
        launched = playwright.chromium.launch(
            executable_path=AS_A_USER,
            env={**os.environ, "TRACTION_CHROMIUM_BINARY": CHROMIUM},
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


def sign_in(browser: Browser, base: str, user: str, landing: str = "Tables") -> Page:
    """A new 1280x800 page (the treatment-room touchscreen) signed in as ``user``."""
    expect.set_options(timeout=EXPECT_MS)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{base}/console/")
    expect(page).to_have_url(re.compile(r"/console/login"))
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=landing)).to_be_visible()
    return page
