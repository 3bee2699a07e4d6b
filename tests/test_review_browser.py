"""`zaoshu review` in a real browser: Playwright drives Debian's chromium against the real CLI.

Needs `apt-get install chromium` (Playwright's own browser download is not used). Without chromium
these tests are skipped, unless CI is set: then they fail. Screenshots go to the test's tmp folder;
UPDATE_DOCS_SCREENSHOT=1 also writes docs/review.png (the README's picture).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from graphs.review_ledger import ledger_lines
from tests.review_fixture import small_run

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def _require_browser() -> None:
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "the playwright package is not installed (pip install -e '.[test]')"
    if problem is None and not Path(CHROMIUM).exists():
        problem = f"no chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI: {problem}")
        pytest.skip(f"browser tests skipped: {problem}")


@pytest.fixture(scope="module")
def browser():
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        b.close()


class Server:
    """`zaoshu review RUN --port 0 --no-browser` as a subprocess; its URL read from what it prints."""

    def __init__(self, run: Path):
        self.proc = subprocess.Popen([sys.executable, "-m", "zaoshu_cli", "review", str(run), "--port", "0",
                                      "--no-browser"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.output: list[str] = []
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(ln) for ln in self.proc.stdout], daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=60)
            except queue.Empty:
                self.stop()
                raise AssertionError(f"zaoshu review printed no URL in 60 s: {self.output}") from None
            self.output.append(line)
            if line.startswith("review page: "):
                self.url = line.split()[2]
                return

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def run(tmp_path):
    return small_run(tmp_path / "run")


@pytest.fixture
def server(run):
    s = Server(run)
    yield s
    s.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    yield context.new_page()
    context.close()


def expect(locator):
    from playwright.sync_api import expect as _expect

    # 5 s (Playwright's default) is too short on a loaded 2-core machine: the review server is a
    # second Python process that answers each action; a slow answer is not a failure
    _expect.set_options(timeout=20_000)
    return _expect(locator)


def card(page, sample_id: str):
    return page.locator(".card", has=page.locator(f"code.sample-id:text-is('{sample_id}')"))


def test_the_cli_binds_localhost_and_prints_its_url(server):
    assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/")
    assert "indexed 30 lines (25 accepted, 4 rejected, 1 failed)" in server.output[0]


def test_filter_edit_reject_reload_ledger_and_export(server, run, page, tmp_path):
    page.goto(server.url)
    assert "zaoshu review" in page.title()
    expect(page.locator(".range")).to_have_text("1–20 of 30")
    page.screenshot(path=str(tmp_path / "1-overview.png"))

    # filter by a reason code
    page.select_option("select[name=code]", "PREAMBLE")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**code=PREAMBLE**")
    assert page.locator(".card").count() == 1
    expect(page.locator(".card mark").first).to_have_text("以下是为您准备的回答")
    page.screenshot(path=str(tmp_path / "2-filtered.png"))

    # edit an answer of an accepted sample
    page.goto(server.url + "?q=黑熊精")
    target = card(page, "qa0000")
    target.locator("[data-act=edit-open]").click()
    target.locator("textarea[name=output]").fill("黑熊精在第十六回到第十七回出场，住在黑风山。")
    target.locator("[data-act=save]").click()
    target = card(page, "qa0000")
    expect(target.locator(".flash")).to_have_text("edit saved (revision 1)")
    expect(target.locator(".answer")).to_have_text("黑熊精在第十六回到第十七回出场，住在黑风山。")

    # reject another sample with a reason code
    page.goto(server.url + "?file=accepted")
    other = card(page, "qa0002")
    other.locator("select[name=reason]").select_option("UNGROUNDED")
    other.locator("[data-act=reject]").click()
    expect(card(page, "qa0002").locator(".rev-rejected")).to_have_text("reviewer: rejected UNGROUNDED")
    page.screenshot(path=str(tmp_path / "3-rejected.png"))

    # reload: both decisions persisted (they live in review.jsonl, not in the page)
    page.reload()
    assert card(page, "qa0002").locator(".rev-rejected").is_visible()
    expect(card(page, "qa0000").locator(".answer")).to_have_text("黑熊精在第十六回到第十七回出场，住在黑风山。")
    assert card(page, "qa0000").locator(".rev-edited").first.is_visible()
    page.goto(server.url + "?review=rejected")
    assert page.locator("code.sample-id").all_inner_texts() == ["qa0002"]

    lines = ledger_lines(run)
    assert [(ln["id"], ln["action"], ln["rev"], ln["base_rev"]) for ln in lines] == [
        ("qa0000", "edit", 1, 0), ("qa0002", "reject", 1, 0)]
    assert lines[0]["turn"] == 0 and lines[0]["output"] == "黑熊精在第十六回到第十七回出场，住在黑风山。"
    assert lines[1]["reason"] == "UNGROUNDED" and all(ln["at"] for ln in lines)

    proc = subprocess.run([sys.executable, "-m", "zaoshu_cli", "export", str(run), "--format", "xtuner"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    exported = [json.loads(ln) for ln in (run / "exports/xtuner/all.jsonl").read_text(encoding="utf-8").splitlines()]
    answers = [r["conversation"][-1]["output"] for r in exported]
    assert "黑熊精在第十六回到第十七回出场，住在黑风山。" in answers
    assert "黑熊精出现在第二回「黑风山」，守着观音禅院后山。" not in answers
    assert len(exported) == 24  # 25 accepted, one rejected by the reviewer


def test_keyboard_shortcuts(server, run, page, tmp_path):
    page.goto(server.url + "?file=accepted")
    page.keyboard.press("j")
    page.keyboard.press("j")
    current = page.locator(".card.current")
    expect(current.locator("code.sample-id")).to_have_text("qa0002")
    page.keyboard.press("a")
    expect(page.locator(".card.current .rev-accepted")).to_have_text("reviewer: accepted")
    page.keyboard.press("u")
    expect(page.locator(".card.current .flash")).to_have_text("undo saved (revision 2)")
    assert page.locator(".card.current .rev-accepted").count() == 0
    page.keyboard.press("k")
    page.keyboard.press("e")
    area = page.locator(".card.current textarea[name=output]")
    assert area.evaluate("el => el === document.activeElement")
    area.fill("用键盘改过的答案。")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".card.current .answer")).to_have_text("用键盘改过的答案。")
    page.keyboard.press("r")
    page.locator(".card.current select[name=reason]").select_option("TOO_SHORT")
    page.keyboard.press("Enter")
    expect(page.locator(".card.current .rev-rejected")).to_have_text("reviewer: rejected TOO_SHORT")
    page.keyboard.press("n")
    page.keyboard.type("再查一下出处")
    page.keyboard.press("Enter")
    expect(page.locator(".card.current .notes")).to_have_text("note: 再查一下出处")
    page.screenshot(path=str(tmp_path / "keyboard.png"))
    assert [(ln["id"], ln["action"]) for ln in ledger_lines(run)] == [
        ("qa0002", "accept"), ("qa0002", "undo"), ("qa0001", "edit"), ("qa0001", "reject"), ("qa0001", "note")]


def test_a_key_pressed_while_a_replaced_card_settles_still_goes_through_htmx(server, run, page):
    """On a slow machine the reviewer can press the next key before htmx has wired up the replaced card
    (CI once did): the action must still be posted, never submitted as a plain form that leaves the page."""
    page.goto(server.url + "?file=accepted")
    page.evaluate("htmx.config.defaultSettleDelay = 1500")  # stretch the window a slow machine opens
    page.keyboard.press("a")
    expect(page.locator(".card.current .rev-accepted")).to_have_text("reviewer: accepted")
    page.keyboard.press("u")
    expect(page.locator(".card.current .flash")).to_have_text("undo saved (revision 2)")
    assert "file=accepted" in page.url
    assert [ln["action"] for ln in ledger_lines(run)] == ["accept", "undo"]


def test_two_tabs_editing_one_sample_lose_no_edit(server, run, browser, tmp_path):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab_a, tab_b = context.new_page(), context.new_page()
    for tab in (tab_a, tab_b):
        tab.goto(server.url + "?emotion=焦虑")
        tab.locator(".turn[data-turn='1'] [data-act=edit-open]").click()
    tab_a.locator(".turn[data-turn='1'] textarea[name=output]").fill("A：项目出问题时，先把能控制的部分列出来。")
    tab_a.locator(".turn[data-turn='1'] [data-act=save]").click()
    expect(tab_a.locator(".flash")).to_have_text("edit saved (revision 1)")
    tab_b.locator(".turn[data-turn='1'] textarea[name=output]").fill("B：我们可以先聊聊最近一次出问题的经过。")
    tab_b.locator(".turn[data-turn='1'] [data-act=save]").click()
    conflict = tab_b.locator(".conflict")
    expect(conflict).to_contain_text("Conflict:")
    assert "not saved" in conflict.inner_text()
    expect(tab_b.locator(".unsaved")).to_have_text("B：我们可以先聊聊最近一次出问题的经过。")
    expect(tab_b.locator(".turn[data-turn='1'] .answer")).to_have_text("A：项目出问题时，先把能控制的部分列出来。")
    tab_b.screenshot(path=str(tmp_path / "conflict.png"))
    # B saves again on top of A's revision: now it goes through, and both edits are in the ledger
    tab_b.locator(".turn[data-turn='1'] [data-act=edit-open]").click()
    tab_b.locator(".turn[data-turn='1'] textarea[name=output]").fill("B：我们可以先聊聊最近一次出问题的经过。")
    tab_b.locator(".turn[data-turn='1'] [data-act=save]").click()
    expect(tab_b.locator(".flash")).to_have_text("edit saved (revision 2)")
    assert [ln["output"] for ln in ledger_lines(run)] == ["A：项目出问题时，先把能控制的部分列出来。",
                                                          "B：我们可以先聊聊最近一次出问题的经过。"]
    context.close()


def test_an_action_that_cannot_reach_the_server_says_it_was_not_saved(server, run, page):
    page.goto(server.url)
    server.stop()
    card(page, "qa0000").locator("[data-act=accept]").click()
    expect(page.locator("#error")).to_contain_text("Not saved: the review server cannot be reached")
    assert not (run / "review.jsonl").exists()


def test_docs_screenshot(server, browser, tmp_path):
    """The README's picture: the overview, a QA sample with its sources, a rejected one with a highlighted rule hit."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.goto(server.url + "?source=xiyouji/第016回.txt")
    expect(page.locator(".card mark")).to_have_count(2)  # the hit in the text and in the list of hits
    shot = tmp_path / "review.png"
    page.screenshot(path=str(shot))
    context.close()
    assert 10_000 < shot.stat().st_size < 300_000
    if os.environ.get("UPDATE_DOCS_SCREENSHOT"):
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copy(shot, REPO / "docs" / "review.png")
