"""The web desk end to end in a real Chromium (Debian's chromium and chromedriver, driven by
Selenium): a running daemon with a Maildir inbox and an SMTP server; an agent logs in, sees a
customer's new mail appear in the queue without reloading, opens it, replies (the reply reaches
the SMTP server once), assigns it and closes it. The screenshots under docs/ come from here:
INBOX_DESK_SCREENSHOTS=docs writes them there."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy import select

from connectors.maildir import MaildirConfig, MaildirConnector
from inbox.config import Settings
from inbox.desk.users import set_password
from inbox.service.daemon import Daemon
from inbox.store.models import Conversation
from rules.holder import RulesInForce
from tests.conftest import Store
from tests.helpers import mail
from tests.processes import wait_for
from tests.smtp_server import SmtpServer

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
RULES = """\
timezone: Europe/Helsinki
agents:
  aino: {languages: [fi, en]}
  esko: {languages: [fi, en]}
teams:
  support: {members: [aino, esko], strategy: least_loaded}
rules:
  - name: tents
    when: {body: {contains: teltta}}
    then: {tag: tents, priority: high}
  - name: everything
    when: {channel: email}
    then: {assign: {team: support}}
"""
LOGIN = "correct horse battery"
HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()) and not os.environ.get("CI"):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/setup --test)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,860")
    options.add_argument("--lang=en")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def daemon(store: Store, smtp: SmtpServer, tmp_path: Path) -> Iterator[tuple[Daemon, Path]]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    maildir = tmp_path / "maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    settings = Settings(
        database_url=store.url,
        data_dir=tmp_path,
        rules_file=rules,
        ingest={"workers": 0},
        web={"listen": "127.0.0.1:0"},
        desk={"refresh_seconds": 1},
    )
    set_password(settings.desk_users_file, "aino", "agent", LOGIN)
    connector = MaildirConnector(
        MaildirConfig(
            name="box", type="maildir", path=maildir, poll_seconds=0.2, smtp=smtp.settings()
        )
    )
    running = Daemon(settings, [connector], rules=RulesInForce(rules))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: running.web is not None, "the web server to listen")
        yield running, maildir
    finally:
        running.stopping.set()
        running.wake.set()
        thread.join(30)
    assert not thread.is_alive()


def deliver(maildir: Path, name: str, payload: bytes) -> None:
    (maildir / "tmp" / name).write_bytes(payload)
    (maildir / "tmp" / name).rename(maildir / "new" / name)


def keep(driver: WebDriver, tmp_path: Path, name: str) -> None:
    """A screenshot; with INBOX_DESK_SCREENSHOTS=docs it is the README's."""
    path = tmp_path / name
    assert driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000  # a page was drawn, not a blank
    target = os.environ.get("INBOX_DESK_SCREENSHOTS")
    if target:
        shutil.copy(path, Path(target) / name)


def test_an_agent_logs_in_sees_the_new_mail_replies_assigns_and_closes(
    browser: WebDriver,
    daemon: tuple[Daemon, Path],
    store: Store,
    smtp: SmtpServer,
    tmp_path: Path,
) -> None:
    running, maildir = daemon
    assert running.web is not None
    wait = WebDriverWait(browser, 20)
    browser.get(f"{running.web.url}/desk/")
    assert "/desk/login" in browser.current_url
    browser.find_element(By.NAME, "name").send_keys("aino")
    browser.find_element(By.NAME, "password").send_keys("a wrong password")
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    # Each wait is for the next page's own words: a look right after a click may see the last.
    problem = (By.CSS_SELECTOR, ".problem")
    wait.until(seen.text_to_be_present_in_element(problem, "Wrong name or password"))
    browser.find_element(By.NAME, "name").send_keys("aino")
    browser.find_element(By.NAME, "password").send_keys(LOGIN)
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait.until(seen.text_to_be_present_in_element((By.CSS_SELECTOR, ".empty"), "No conversation"))

    # Mail arrives while the queue is open: the polled rows show it, no reload.
    deliver(
        maildir,
        "1.M1P1.desk",
        mail(
            sender="Aino Virtanen <aino.virtanen@example.fi>",
            subject="Teltan vetoketju rikki",
            body=f"Hei, teltta on rikki. Tilaus 123456.\n{HOSTILE}\n",
            message_id="desk-browser-1@example.fi",
        ),
    )
    deliver(
        maildir,
        "2.M2P1.desk",
        mail(
            sender="Ελένη Παπαδοπούλου <eleni@example.gr>",
            subject="Παραγγελία 4471: πότε έρχεται;",
            body="Καλημέρα, πότε θα έρθει η παραγγελία μου;\n",
            message_id="desk-browser-2@example.fi",
        ),
    )
    deliver(
        maildir,
        "3.M3P1.desk",
        mail(
            sender="سارة <sara@example.ae>",
            subject="سؤال عن الطلب",
            body="مرحبا، متى يصل طلبي؟\n",
            message_id="desk-browser-3@example.fi",
        ),
    )
    row = wait.until(
        seen.presence_of_element_located((By.XPATH, "//a[text()='Teltan vetoketju rikki']"))
    )
    wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "tr[data-id]")) == 3)
    assert browser.execute_script("return window.pwned") is None
    keep(browser, tmp_path, "desk-queue.png")
    row = browser.find_element(By.XPATH, "//a[text()='Teltan vetoketju rikki']")
    row.click()

    wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "article.conversation")))
    body = browser.find_element(By.CSS_SELECTOR, ".message.in pre.body").text
    assert "<script>window.pwned = 1</script>" in body  # shown as text, never run
    assert browser.execute_script("return window.pwned") is None
    assert "tag tents: rule 'tents'" in browser.find_element(By.CSS_SELECTOR, ".why").text
    browser.find_element(By.NAME, "text").send_keys("Hei Aino, uusi vetoketju lähtee huomenna.")
    browser.find_element(By.CSS_SELECTOR, "button[value=reply]").click()
    wait.until(seen.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice"), "Reply queued"))
    wait_for(lambda: len(smtp.received) == 1, "the reply at the SMTP server", timeout=30)
    sent = smtp.received[0].message
    assert sent["To"] == "aino.virtanen@example.fi"
    assert "uusi vetoketju" in sent.get_content()
    keep(browser, tmp_path, "desk-conversation.png")

    Select(browser.find_element(By.NAME, "agent")).select_by_visible_text("esko")
    browser.find_element(By.XPATH, "//button[text()='Assign']").click()
    wait.until(seen.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice"), "Assigned to"))
    assert "Assigned to esko" in browser.find_element(By.CSS_SELECTOR, ".notice").text
    assert browser.find_element(By.CSS_SELECTOR, "dd.assignee").text.startswith("esko")
    browser.find_element(By.XPATH, "//button[text()='Close']").click()
    wait.until(seen.text_to_be_present_in_element((By.CSS_SELECTOR, "dd.status"), "closed"))
    with store.readers() as session:
        conversation = session.scalars(
            select(Conversation).where(Conversation.subject == "Teltan vetoketju rikki")
        ).one()
        assert (conversation.status, conversation.assignee) == ("closed", "esko")
    assert len(smtp.received) == 1  # exactly once, whatever the desk did after

    # A phone: the queue fits the screen (no sideways scrolling) and still shows the rows.
    browser.set_window_size(390, 844)
    browser.get(f"{running.web.url}/desk/")
    wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "tr[data-id]")) == 2)
    width = browser.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert width[0] <= width[1] + 1, width
    keep(browser, tmp_path, "desk-queue-phone.png")
