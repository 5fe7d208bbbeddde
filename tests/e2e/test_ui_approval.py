"""Approving and rejecting in the real Prefect UI, with Debian's chromium driven by Playwright."""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from pathlib import Path

import pytest

from tests.e2e.conftest import FAST
from tests.e2e.test_release import assert_torn_down

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


def decide_in_the_ui(
    browser, releases, flow_run_id: str, *, approve: bool, approver: str, comment: str
):
    """What a person does: open the waiting run, open Resume, fill the form, submit.

    Done once the server has the decision: the run leaves its paused state.
    """
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    seen: list[str] = []  # what the page said: console errors and refused requests
    page.on(
        "console",
        lambda m: (
            seen.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
        ),
    )
    page.on(
        "response",
        lambda r: (
            seen.append(f"HTTP {r.status} {r.request.method} {r.url}") if r.status >= 400 else None
        ),
    )
    try:
        page.goto(f"{releases.settings.ui_url}/v2/runs/flow-run/{flow_run_id}")
        page.get_by_role("button", name="Open menu").first.click()
        page.get_by_role("menuitem", name="Resume").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Evidence:").wait_for()
        if approve:
            dialog.get_by_role("switch").click()
        fields = dialog.locator("textarea")
        fields.nth(0).fill(approver)
        fields.nth(1).fill(comment)
        dialog.get_by_role("button", name="Resume").click()
        deadline, again = time.monotonic() + 60, time.monotonic() + 15
        while releases.run(flow_run_id).state.is_paused():
            if time.monotonic() > again and dialog.is_visible():
                # The server must take a person's Resume the first time (a busy SQLite once
                # answered 503 here); a click the page itself dropped may be made again.
                refused = [line for line in seen if line.startswith("HTTP 5")]
                assert not refused, f"the server refused the Resume: {refused}"
                again = float("inf")
                warnings.warn(f"Resume clicked twice; the page said: {seen}", stacklevel=1)
                dialog.get_by_role("button", name="Resume").click()
            if time.monotonic() > deadline:
                page.screenshot(path=str(Path(tempfile.gettempdir()) / f"ui-{flow_run_id}.png"))
                raise AssertionError(
                    f"the run is still waiting after Resume; the page said {seen} and shows:\n"
                    f"{dialog.inner_text() if dialog.is_visible() else '(no dialog)'}"
                )
            time.sleep(0.5)
    finally:
        page.close()


def test_approving_in_the_prefect_ui_promotes(releases, browser, credit_project):
    started = releases.start(credit_project, FAST)
    assert releases.wait(started).state.is_paused()
    decide_in_the_ui(
        browser,
        releases,
        started.flow_run_id,
        approve=True,
        approver="ui-ann",
        comment="looks good in the browser",
    )
    run = releases.wait(started, paused_ok=False)
    assert run.state.name == "Promoted", run.state
    registry = releases.services.registry
    assert registry.history("credit")[-1].actor == "ui-ann"
    assert_torn_down(releases, started.release_id)


def test_rejecting_in_the_prefect_ui_tears_down(releases, browser, credit_project):
    started = releases.start(credit_project, FAST)
    assert releases.wait(started).state.is_paused()
    decide_in_the_ui(
        browser,
        releases,
        started.flow_run_id,
        approve=False,
        approver="ui-bob",
        comment="not this one",
    )
    run = releases.wait(started, paused_ok=False)
    assert run.state.name == "Rejected" and "ui-bob" in run.state.message, run.state
    assert_torn_down(releases, started.release_id)
