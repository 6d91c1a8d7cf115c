"""The web desk over HTTP (Werkzeug's test client through the daemon's WSGI app, /desk mounted
as `inbox run` mounts it), on SQLite and PostgreSQL: who gets in, what every page escapes,
what the queue filters, and that each action writes what the CLI's would."""

from __future__ import annotations

import itertools
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update
from werkzeug.test import Client, TestResponse

from inbox.cli import main
from inbox.config import DeskSettings
from inbox.desk.app import LOCKOUT_FAILURES, Desk
from inbox.desk.sessions import Sessions
from inbox.desk.users import Users, remove_user, set_password
from inbox.service.web import WebApp
from inbox.store.models import Contact, Conversation, Event, Identity, Message, OutboxItem, utcnow
from rules.holder import RulesInForce
from tests.conftest import BACKENDS, Store
from tests.helpers import Clock, arrive, conversation_of, ingest, make_pipeline, raw

RULES = """\
timezone: Europe/Helsinki
agents:
  aino: {languages: [fi, en], slack: UAINO}
  esko: {languages: [fi, en]}
  layla: {languages: [ar, en]}
teams:
  support: {members: [aino, esko]}
  billing: {members: [layla]}
rules:
  - name: invoices-to-billing
    when: {subject: {contains: lasku}}
    then: {assign: {team: billing}, tag: invoice}
    stop: true
  - name: everything-else
    when: {channel: email}
    then: {assign: {team: support}}
"""
PASSWORD = "correct horse battery"
_numbers = itertools.count(1)


@dataclass
class Desked:
    store: Store
    rules: RulesInForce
    users_file: Path
    desk: Desk
    client: Client
    clock: Clock

    def login(self, name: str = "aino", password: str = PASSWORD) -> TestResponse:
        return log_in(self.client, name, password)

    def csrf(self, path: str = "/desk/") -> str:
        return csrf_of(self.client.get(path))

    def act(self, conversation_id: int, action: str, **form: str) -> TestResponse:
        token = self.csrf(f"/desk/c/{conversation_id}")
        return self.client.post(f"/desk/c/{conversation_id}/{action}", data={"csrf": token, **form})

    def mail(self, **options: Any) -> Conversation:
        options.setdefault("message_id", f"desk{next(_numbers)}@example.fi")
        return arrive(self.store, self.rules, self.clock, **options)


def log_in(
    client: Client,
    name: str,
    password: str = PASSWORD,
    *,
    next_page: str = "/desk/",
    form_at: str = "/desk/login",
) -> TestResponse:
    """The login form as a browser fills it: its token from the page, then the POST."""
    form = client.get(form_at)
    data = {"name": name, "password": password, "csrf": csrf_of(form), "next": next_page}
    return client.post("/desk/login", data=data)


def csrf_of(response: TestResponse) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', response.get_data(as_text=True))
    assert found, response.get_data(as_text=True)[:500]
    return found.group(1)


def make_desk(
    store: Store, rules: RulesInForce, users_file: Path, **settings: Any
) -> tuple[Desk, Client]:
    desk = Desk(
        DeskSettings(users_file=users_file, **settings),
        writers=store.writers,
        readers=store.readers,
        users=Users(users_file),
        sessions=Sessions("a test secret", max_age_seconds=3600),
        rules=rules,
    )
    app = WebApp({}, max_body_bytes=1024 * 1024, mounts={"/desk": desk})
    return desk, Client(app)


@pytest.fixture
def rules(tmp_path: Path) -> RulesInForce:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    answers = tmp_path / "answers"
    answers.mkdir()
    (answers / "thanks.fi.md").write_text("Kiitos, {customer_first_name}!\n", encoding="utf-8")
    (answers / "thanks.en.md").write_text("Thank you, {customer_first_name}!\n", encoding="utf-8")
    return RulesInForce(path)


@pytest.fixture
def desked(store: Store, rules: RulesInForce, tmp_path: Path) -> Iterator[Desked]:
    users_file = tmp_path / "desk-users"
    set_password(users_file, "aino", "agent", PASSWORD)
    set_password(users_file, "boss", "admin", PASSWORD)
    desk, client = make_desk(store, rules, users_file)
    yield Desked(store, rules, users_file, desk, client, Clock())


def events(store: Store, conversation_id: int, kind: str) -> list[Event]:
    with store.readers() as session:
        query = select(Event).where(Event.conversation_id == conversation_id, Event.kind == kind)
        return list(session.scalars(query))


# -- who gets in -----------------------------------------------------------------------------


@BACKENDS
def test_the_desk_is_off_until_a_user_exists(
    store: Store, rules: RulesInForce, tmp_path: Path
) -> None:
    users_file = tmp_path / "desk-users"
    _, client = make_desk(store, rules, users_file)
    off = client.get("/desk/")
    assert off.status_code == 404
    assert "inbox desk passwd" in off.get_data(as_text=True)
    assert client.get("/desk/login").status_code == 404
    set_password(users_file, "aino", "agent", PASSWORD)  # no restart: the file is read again
    on = client.get("/desk/")
    assert on.status_code == 303 and on.headers["Location"].startswith("/desk/login")


@BACKENDS
def test_no_page_and_no_action_without_login(desked: Desked) -> None:
    conversation = desked.mail()
    for path in ("/desk/", "/desk/queue/rows", f"/desk/c/{conversation.id}", "/desk/raw/1"):
        response = desked.client.get(path)
        assert response.status_code == 303, path
        assert response.headers["Location"].startswith("/desk/login?next="), path
    asked = desked.client.get(f"/desk/c/{conversation.id}?full=1")
    form = desked.client.get(asked.headers["Location"]).get_data(as_text=True)
    carried = re.search(r'name="next" value="([^"]+)"', form)
    assert carried is not None
    done = log_in(
        desked.client, "aino", next_page=carried.group(1), form_at=asked.headers["Location"]
    )
    assert done.headers["Location"] == f"/desk/c/{conversation.id}?full=1"  # back where asked
    desked.client.post("/desk/logout", data={"csrf": desked.csrf()})
    assert desked.client.get("/desk/").status_code == 303
    polled = desked.client.get("/desk/queue/rows", headers={"HX-Request": "true"})
    assert polled.status_code == 401 and polled.headers["HX-Redirect"].startswith("/desk/login")
    posted = desked.client.post(f"/desk/c/{conversation.id}/close", data={"csrf": "x"})
    assert posted.status_code == 303
    assert not events(desked.store, conversation.id, "closed")


@BACKENDS
def test_htmx_and_the_style_sheet_are_served_to_the_login_page(desked: Desked) -> None:
    login = desked.client.get("/desk/login").get_data(as_text=True)
    assert 'src="/desk/static/htmx.min.js"' in login
    script = desked.client.get("/desk/static/htmx.min.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    assert b"htmx" in script.data[:2000]
    assert desked.client.get("/desk/static/desk.css").mimetype == "text/css"
    assert desked.client.get("/desk/static/..%2Fapp.py").status_code == 404
    assert desked.client.get("/desk/static/app.py").status_code == 404


@BACKENDS
def test_login_with_the_right_password_opens_the_queue(desked: Desked) -> None:
    conversation = desked.mail(subject="Teltta rikki")
    wrong = desked.login(password="not it at all")
    assert wrong.status_code == 401
    assert "Wrong name or password" in wrong.get_data(as_text=True)
    assert desked.login(name="nobody").status_code == 401
    done = desked.login()
    assert done.status_code == 303 and done.headers["Location"] == "/desk/"
    cookie = done.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/desk/" in cookie
    queue = desked.client.get("/desk/").get_data(as_text=True)
    assert "Teltta rikki" in queue and f'href="/desk/c/{conversation.id}"' in queue
    assert "aino" in queue


@BACKENDS
def test_repeated_failures_lock_the_name_out_even_for_the_right_password(
    desked: Desked,
) -> None:
    for _ in range(LOCKOUT_FAILURES):
        assert desked.login(password="guessing badly").status_code == 401
    locked = desked.login()
    assert locked.status_code == 401
    assert "Too many failed attempts" in locked.get_data(as_text=True)
    assert desked.login(name="boss").status_code == 303  # another name is not locked


@BACKENDS
def test_an_agent_taken_out_of_the_rules_file_cannot_log_in(desked: Desked) -> None:
    set_password(desked.users_file, "mallory", "agent", PASSWORD)
    refused = desked.login("mallory")
    assert refused.status_code == 401
    assert "mallory is no agent of the rules file" in refused.get_data(as_text=True)
    assert desked.login("boss").status_code == 303  # an admin need not be an agent


@BACKENDS
def test_after_login_only_a_local_page_is_next(desked: Desked) -> None:
    response = log_in(desked.client, "aino", next_page="https://evil.example/phish")
    assert response.headers["Location"] == "/desk/"


@BACKENDS
def test_a_session_ends_when_it_expires_the_password_changes_or_the_user_goes(
    desked: Desked, store: Store, rules: RulesInForce
) -> None:
    desked.login()
    assert desked.client.get("/desk/").status_code == 200
    set_password(desked.users_file, "aino", "agent", "another long password")
    assert desked.client.get("/desk/").status_code == 303
    desked.login(password="another long password")
    assert desked.client.get("/desk/").status_code == 200
    remove_user(desked.users_file, "aino")
    assert desked.client.get("/desk/").status_code == 303

    expiring = Desk(
        desked.desk.settings,
        writers=store.writers,
        readers=store.readers,
        users=Users(desked.users_file),
        sessions=Sessions("a test secret", max_age_seconds=0),
        rules=rules,
    )
    client = Client(WebApp({}, max_body_bytes=1 << 20, mounts={"/desk": expiring}))
    log_in(client, "boss")
    # itsdangerous counts whole seconds: a session older than max_age (0 s) is refused.
    import time

    time.sleep(1.1)
    assert client.get("/desk/").status_code == 303


@BACKENDS
def test_a_forged_or_tampered_cookie_opens_nothing(desked: Desked) -> None:
    desked.login()
    cookie = desked.client.get_cookie("inbox_desk", path="/desk/")
    assert cookie is not None
    user, _, signature = cookie.value.partition(".")
    desked.client.set_cookie("inbox_desk", f"{user}.x{signature}", path="/desk/")
    assert desked.client.get("/desk/").status_code == 303
    other = Sessions("another secret", max_age_seconds=3600)
    _, forged = other.open("aino", Users(desked.users_file).get("aino").fingerprint)  # type: ignore[union-attr]
    desked.client.set_cookie("inbox_desk", forged, path="/desk/")
    assert desked.client.get("/desk/").status_code == 303


@BACKENDS
def test_every_form_needs_its_sessions_token_and_this_site(desked: Desked) -> None:
    conversation = desked.mail()
    desked.login()
    path = f"/desk/c/{conversation.id}/close"
    assert desked.client.post(path, data={}).status_code == 403
    assert desked.client.post(path, data={"csrf": "0" * 64}).status_code == 403
    token = desked.csrf(f"/desk/c/{conversation.id}")
    cross = desked.client.post(
        path, data={"csrf": token}, headers={"Origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    assert not events(desked.store, conversation.id, "closed")
    # Another user's token is no good in this session.
    _, other = make_desk(desked.store, desked.rules, desked.users_file)
    log_in(other, "boss")
    assert other.post(path, data={"csrf": token}).status_code == 403
    assert desked.client.post(path, data={"csrf": token}).status_code == 303
    assert len(events(desked.store, conversation.id, "closed")) == 1


@BACKENDS
def test_a_trusted_proxy_names_the_user_and_nobody_else_may(
    store: Store, rules: RulesInForce, tmp_path: Path
) -> None:
    _, client = make_desk(store, rules, tmp_path / "none", auth="proxy")
    trusted = {"REMOTE_ADDR": "127.0.0.1"}
    page = client.get("/desk/", headers={"X-Remote-User": "esko"}, environ_base=trusted)
    assert page.status_code == 200 and "esko" in page.get_data(as_text=True)
    stranger = client.get("/desk/", headers={"X-Remote-User": "mallory"}, environ_base=trusted)
    assert stranger.status_code == 403
    spoofed = client.get(
        "/desk/", headers={"X-Remote-User": "esko"}, environ_base={"REMOTE_ADDR": "10.1.2.3"}
    )
    assert spoofed.status_code == 403
    assert client.get("/desk/", environ_base=trusted).status_code == 403
    # Its forms work with the token the page gave, and not without it.
    conversation = arrive(store, rules, Clock(), message_id="proxied@example.fi")
    esko = {"X-Remote-User": "esko"}
    page = client.get(f"/desk/c/{conversation.id}", headers=esko, environ_base=trusted)
    path = f"/desk/c/{conversation.id}/priority"
    form = {"csrf": csrf_of(page), "priority": "urgent"}
    assert client.post(path, data=form, headers=esko, environ_base=trusted).status_code == 303
    mallory = {"X-Remote-User": "aino"}  # another agent's page token is not esko's
    assert client.post(path, data=form, headers=mallory, environ_base=trusted).status_code == 403
    assert [e.actor for e in events(store, conversation.id, "priority_set")] == ["person:esko"]


# -- what the pages show ---------------------------------------------------------------------

HOSTILE = (
    "<script>alert('body')</script>\n"
    '<img src=x onerror="alert(1)"><b>unclosed <a href="javascript:alert(2)">click\n'
    "]]></textarea></pre><svg/onload=alert(3)>\n"
)


@BACKENDS
def test_hostile_text_is_shown_as_text_everywhere(desked: Desked) -> None:
    conversation = desked.mail(
        sender='"<script>alert(4)</script>" <x@example.fi>',
        subject="<img src=x onerror=alert(5)> Help",
        body=HOSTILE,
    )
    desked.login()
    queue = desked.client.get("/desk/")
    page = desked.client.get(f"/desk/c/{conversation.id}")
    for response in (queue, page):
        html = response.get_data(as_text=True)
        assert "<script>alert" not in html and "<img src=x" not in html
        assert 'onerror="' not in html  # the body's attribute, as written, only when unescaped
        assert "&lt;img src=x onerror=alert(5)&gt; Help" in html
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert response.headers["X-Frame-Options"] == "DENY"
    html = page.get_data(as_text=True)
    assert "&lt;script&gt;alert(&#39;body&#39;)&lt;/script&gt;" in html
    assert "&lt;/textarea&gt;&lt;/pre&gt;&lt;svg/onload=alert(3)&gt;" in html


@BACKENDS
def test_right_to_left_names_and_other_scripts_arrive_intact(desked: Desked) -> None:
    conversation = desked.mail(
        sender="ليلى الحسيني <layla@example.ae>",
        subject="الفاتورة lasku 2026",
        body="مرحبا، لدي سؤال عن الفاتورة.\nΚαλημέρα · Здравствуйте · Tere õhtust\n",
    )
    desked.login()
    html = desked.client.get(f"/desk/c/{conversation.id}").get_data(as_text=True)
    assert '<h1 dir="auto">' in html and "الفاتورة lasku 2026" in html
    assert "<bdi>ليلى الحسيني</bdi>" in html
    assert "Καλημέρα · Здравствуйте · Tere õhtust" in html
    queue = desked.client.get("/desk/?team=billing").get_data(as_text=True)
    assert "<bdi>ليلى الحسيني</bdi>" in queue


@BACKENDS
def test_the_history_says_why_and_the_original_is_a_download(desked: Desked) -> None:
    conversation = desked.mail(subject="lasku puuttuu", body="Missä lasku on?\n")
    desked.login()
    html = desked.client.get(f"/desk/c/{conversation.id}").get_data(as_text=True)
    assert "tag invoice: rule &#39;invoices-to-billing&#39;" in html
    assert "tagged invoice by invoices-to-billing" in html
    with desked.store.readers() as session:
        message_id = session.scalar(
            select(Message.id).where(Message.conversation_id == conversation.id)
        )
    assert f'href="/desk/raw/{message_id}"' in html
    raw = desked.client.get(f"/desk/raw/{message_id}")
    assert raw.status_code == 200
    assert raw.headers["Content-Disposition"].startswith("attachment")
    assert "sandbox" in raw.headers["Content-Security-Policy"]
    assert b"Subject: lasku puuttuu" in raw.data
    assert desked.client.get("/desk/raw/999999").status_code == 404


@BACKENDS
def test_an_attachment_downloads_as_it_came_and_never_renders(desked: Desked) -> None:
    message = EmailMessage()
    message["From"] = "Aino <aino@example.fi>"
    message["To"] = "support@northwind.example"
    message["Subject"] = "Kuitti liitteenä"
    message["Message-ID"] = "<with-attachment@example.fi>"
    message.set_content("Kuitti liitteenä.\n")
    hostile = b"<html><script>alert(1)</script></html>"
    message.add_attachment(hostile, maintype="text", subtype="html", filename="kuitti ä.html")
    pipeline = make_pipeline(desked.store, clock=desked.clock, rules=desked.rules)
    try:
        ingest(pipeline, raw(message.as_bytes(), received_at=desked.clock.now))
    finally:
        pipeline.close()
    conversation = conversation_of(desked.store, "with-attachment@example.fi")
    desked.login()
    page = desked.client.get(f"/desk/c/{conversation.id}").get_data(as_text=True)
    link = re.search(r'href="(/desk/attachments/\d+)"', page)
    assert link and "kuitti ä.html" in page
    download = desked.client.get(link.group(1))
    assert download.status_code == 200 and download.data == hostile
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert "kuitti" in download.headers["Content-Disposition"]
    assert download.headers["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert desked.client.get("/desk/attachments/999999").status_code == 404


# -- the queue -------------------------------------------------------------------------------


@BACKENDS
def test_the_queue_filters_sorts_pages_and_counts_by_team(desked: Desked) -> None:
    support = [desked.mail(subject=f"Teltta {n}") for n in range(3)]
    billing = desked.mail(subject="lasku väärin")
    now = utcnow()
    with desked.store.writers.begin() as session:
        session.execute(
            update(Conversation)
            .where(Conversation.id == support[0].id)
            .values(priority="urgent", assignee="aino", first_response_due=now - timedelta(hours=1))
        )
        session.execute(
            update(Conversation)
            .where(Conversation.id == support[1].id)
            .values(first_response_due=now + timedelta(minutes=20), language="en", assignee=None)
        )
        session.execute(
            update(Conversation).where(Conversation.id == billing.id).values(assignee=None)
        )
        session.execute(
            update(Conversation).where(Conversation.id == support[2].id).values(status="closed")
        )
    desked.login()

    def ids(query: str) -> list[int]:
        html = desked.client.get(f"/desk/?{query}").get_data(as_text=True)
        return [int(found) for found in re.findall(r'data-id="(\d+)"', html)]

    assert set(ids("")) == {support[0].id, support[1].id, billing.id}
    assert ids("assignee=me") == [support[0].id]
    assert set(ids("assignee=none")) == {support[1].id, billing.id}
    assert ids("team=billing") == [billing.id]
    assert ids("tag=invoice") == [billing.id]
    assert ids("priority=urgent") == [support[0].id]
    assert ids("sla=breached") == [support[0].id]
    assert ids("sla=due_soon") == [support[1].id]
    assert ids("sla=none") == [billing.id]
    assert ids("language=en") == [support[1].id]
    assert ids("status=closed") == [support[2].id]
    assert ids("search=VÄÄRIN") == [billing.id]
    assert ids("search=%25") == []  # the wildcard typed is a character, not "anything"
    assert ids("sort=priority")[0] == support[0].id
    assert ids("sort=due")[:2] == [support[0].id, support[1].id]
    counts = desked.client.get("/desk/").get_data(as_text=True)
    assert re.search(r'team=support[^"]*"[^>]*>support <span class="n">2</span>', counts)
    assert re.search(r'billing <span class="n">1</span>', counts)
    odd = desked.client.get("/desk/?status=everything&priority=huge").get_data(as_text=True)
    assert "Not understood, left out: status=everything, priority=huge" in odd

    desked.desk.settings.page_size = 2
    first, second = ids(""), ids("page=2")
    assert len(first) == 2 and len(second) == 1 and not set(first) & set(second)
    assert "page 1 of 2" in desked.client.get("/desk/").get_data(as_text=True)


@BACKENDS
def test_the_queue_rows_poll_sees_a_new_conversation(desked: Desked) -> None:
    desked.login()
    rows = desked.client.get("/desk/queue/rows?team=support", headers={"HX-Request": "true"})
    html = rows.get_data(as_text=True)
    assert 'hx-trigger="every 5s"' in html and "No conversation matches" in html
    assert html.lstrip().startswith('<section id="queue"')  # a fragment, not a page
    conversation = desked.mail(subject="Uusi viesti")
    again = desked.client.get("/desk/queue/rows?team=support").get_data(as_text=True)
    assert f'data-id="{conversation.id}"' in again and "Uusi viesti" in again


# -- actions ---------------------------------------------------------------------------------


@BACKENDS
def test_a_reply_from_the_desk_goes_through_the_outbox_once(desked: Desked) -> None:
    conversation = desked.mail()
    desked.login()
    done = desked.act(conversation.id, "reply", text="Hei Aino, korjaamme sen.", kind="reply")
    assert done.status_code == 303 and "done=Reply+queued" in done.headers["Location"]
    page = desked.client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Reply queued: it leaves over email" in page
    assert "Hei Aino, korjaamme sen." in page
    with desked.store.readers() as session:
        replies = list(
            session.scalars(
                select(Message).where(
                    Message.conversation_id == conversation.id, Message.direction == "out"
                )
            )
        )
        assert [(m.author, m.to_addresses) for m in replies] == [("aino", ["aino@example.fi"])]
        kinds = session.scalars(
            select(OutboxItem.kind).where(OutboxItem.conversation_id == conversation.id)
        ).all()
        assert kinds.count("reply") == 1
        assert session.get(Conversation, conversation.id).status == "pending"  # type: ignore[union-attr]
    assert events(desked.store, conversation.id, "replied")[0].actor == "person:aino"


@BACKENDS
def test_notes_and_canned_answers(desked: Desked) -> None:
    conversation = desked.mail(sender="Aino Virtanen <aino@example.fi>")
    desked.login()
    desked.act(conversation.id, "reply", text="Soitin asiakkaalle.", kind="note")
    desked.act(conversation.id, "reply", text="", answer="thanks", kind="reply")
    missing = desked.act(conversation.id, "reply", text="", answer="nope", kind="reply")
    assert "problem=" in missing.headers["Location"]
    empty = desked.act(conversation.id, "reply", text="   ", kind="reply")
    assert "the+reply+is+empty" in empty.headers["Location"]
    with desked.store.readers() as session:
        written = session.execute(
            select(Message.direction, Message.text)
            .where(Message.conversation_id == conversation.id, Message.direction != "in")
            .order_by(Message.id)
        ).all()
    assert [tuple(row) for row in written] == [
        ("note", "Soitin asiakkaalle."),
        ("out", "Kiitos, Aino!"),
    ]


@BACKENDS
def test_assign_unassign_priority_tags_snooze_close(desked: Desked) -> None:
    conversation = desked.mail()
    desked.login()
    assert (
        "Assigned+to+esko"
        in desked.act(conversation.id, "assign", agent="esko").headers["Location"]
    )
    assert "no+agent" in desked.act(conversation.id, "assign", agent="mallory").headers["Location"]
    desked.act(conversation.id, "assign")  # claim: to whoever asks
    desked.act(conversation.id, "unassign")
    desked.act(conversation.id, "priority", priority="high")
    bad = desked.act(conversation.id, "priority", priority="apocalyptic")
    assert "problem=" in bad.headers["Location"]
    desked.act(conversation.id, "tags", add="vip, rikki", remove="")
    desked.act(conversation.id, "tags", add="", remove="rikki")
    hostile_tag = desked.act(conversation.id, "tags", add="<script>")
    assert "problem=" in hostile_tag.headers["Location"]
    snoozed = desked.act(conversation.id, "snooze", until="2h")
    assert "Snoozed+until" in snoozed.headers["Location"]
    assert "problem=" in desked.act(conversation.id, "snooze", until="someday").headers["Location"]
    desked.act(conversation.id, "close")
    assert "closed+already" in desked.act(conversation.id, "close").headers["Location"]

    with desked.store.readers() as session:
        stored = session.get(Conversation, conversation.id)
        assert stored is not None
        assert stored.status == "closed" and stored.assignee is None
        assert stored.priority == "high"
        assert [t.name for t in stored.tags] == ["vip"]
        history = session.execute(
            select(Event.kind, Event.id)
            .where(Event.conversation_id == conversation.id, Event.actor == "person:aino")
            .order_by(Event.id)
        ).all()
    history_ids = [event_id for _, event_id in history]
    assert [kind for kind, _ in history] == [
        "assigned",
        "assigned",
        "unassigned",
        "priority_set",
        "tag_added",
        "tag_added",
        "tag_removed",
        "snoozed",
        "closed",
    ]
    page = desked.client.get(f"/desk/c/{conversation.id}").get_data(as_text=True)
    assert "untagged rikki by aino" in page and "priority normal → high by aino" in page
    with desked.store.readers() as session:
        pings = session.scalars(
            select(OutboxItem.idempotency_key).where(
                OutboxItem.conversation_id == conversation.id, OutboxItem.kind == "slack.assignment"
            )
        ).all()
    # aino's claim pings her (she has Slack); esko, who has none, is not pinged.
    assert [key for key in pings if ":person:" in key] == [
        f"assign:{conversation.id}:person:{history_ids[1]}"
    ]


# -- the rules page --------------------------------------------------------------------------


@BACKENDS
def test_an_agent_sees_the_rules_and_tries_a_message_without_storing_it(desked: Desked) -> None:
    desked.login()
    page = desked.client.get("/desk/rules").get_data(as_text=True)
    assert "invoices-to-billing" in page and "everything-else" in page
    assert "<strong>billing</strong> (round_robin): layla" in page
    assert "then: {assign: {team: billing}, tag: invoice}" in page  # the file, as text
    assert "Check a candidate" not in page  # an admin's
    tried = desked.client.post(
        "/desk/rules/test",
        data={
            "csrf": desked.csrf("/desk/rules"),
            "from": "Aino <aino@example.fi>",
            "subject": "Lasku <b>väärin</b>",
            "body": "Hei, laskussa on virhe.",
        },
    )
    html = tried.get_data(as_text=True)
    assert tried.status_code == 200
    assert '<span class="mark">✓</span> invoices-to-billing (stop)' in html
    assert '<span class="mark">·</span> everything-else' in html  # not looked at: stopped
    assert "<li>tag invoice  (rule invoices-to-billing)</li>" in html
    assert "subject &#39;Lasku &lt;b&gt;väärin&lt;/b&gt;&#39;" in html
    with desked.store.readers() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 0


@BACKENDS
def test_an_admin_checks_and_replays_a_candidate_and_nothing_changes(desked: Desked) -> None:
    desked.mail(subject="Teltta rikki", body="Teltta on rikki.\n")
    desked.mail(subject="lasku", body="Missä lasku?\n")
    desked.login()
    refused = desked.client.post(
        "/desk/rules/check", data={"csrf": desked.csrf("/desk/rules"), "candidate": RULES}
    )
    assert refused.status_code == 403  # aino is an agent
    desked.client.post("/desk/logout", data={"csrf": desked.csrf()})
    desked.login("boss")
    token = desked.csrf("/desk/rules")
    broken = desked.client.post(
        "/desk/rules/check",
        data={"csrf": token, "candidate": RULES.replace("assign: {team: support}", "asign: 1")},
    )
    assert "asign" in broken.get_data(as_text=True)
    assert 'class="problem"' in broken.get_data(as_text=True)
    candidate = RULES.replace(
        "then: {assign: {team: support}}", "then: {assign: {team: support}, tag: tents}"
    )
    replayed = desked.client.post(
        "/desk/rules/check",
        data={"csrf": token, "candidate": candidate, "replay": "1", "since": "3650d"},
    ).get_data(as_text=True)
    assert "OK: 2 rules, 2 teams, 3 agents" in replayed
    assert "Replayed over 2 messages" in replayed
    assert '<td>1</td><td class="change">+tag tents</td>' in replayed
    assert desked.rules.path.read_text(encoding="utf-8") == RULES
    assert desked.rules.current.ruleset.rules[1].then.tag == ()


# -- contacts --------------------------------------------------------------------------------


@BACKENDS
def test_contacts_are_found_merged_and_split_with_an_audit(desked: Desked) -> None:
    first = desked.mail(sender="Aino Virtanen <aino@example.fi>", subject="Teltta")
    second = desked.mail(
        sender='"Aino <script>x</script>" <aino.work@firma.example>', subject="Kenkä"
    )
    assert first.contact_id and second.contact_id and first.contact_id != second.contact_id
    keep, merged = first.contact_id, second.contact_id
    opted_out = utcnow() - timedelta(days=3)
    with desked.store.writers.begin() as session:
        session.execute(
            update(Contact).where(Contact.id == merged).values(sms_opted_out_at=opted_out)
        )
    desked.login()
    found = desked.client.get("/desk/contacts?q=AINO").get_data(as_text=True)
    assert set(map(int, re.findall(r'data-contact="(\d+)"', found))) == {keep, merged}
    assert "&lt;script&gt;x&lt;/script&gt;" in found and "<script>x" not in found
    by_domain = desked.client.get("/desk/contacts?q=firma.example").get_data(as_text=True)
    assert re.findall(r'data-contact="(\d+)"', by_domain) == [str(merged)]

    token = desked.csrf(f"/desk/contacts/{keep}")
    itself = desked.client.post(
        f"/desk/contacts/{keep}/merge", data={"csrf": token, "other": str(keep)}
    )
    assert "merged+into+itself" in itself.headers["Location"]
    done = desked.client.post(
        f"/desk/contacts/{keep}/merge", data={"csrf": token, "other": f"#{merged}"}
    )
    assert "1+addresses%2C+1+conversations" in done.headers["Location"]
    page = desked.client.get(f"/desk/contacts/{keep}").get_data(as_text=True)
    assert "aino.work@firma.example" in page and "Kenkä" in page and "Teltta" in page
    assert "contact merged by aino" in page
    assert "Texted STOP" in page  # the merged contact's opt-out holds
    assert desked.client.get(f"/desk/contacts/{merged}").status_code == 404
    history = desked.client.get(f"/desk/c/{second.id}").get_data(as_text=True)
    assert "contact merged by aino" in history

    with desked.store.readers() as session:
        work = session.scalars(
            select(Identity).where(Identity.address == "aino.work@firma.example")
        ).one()
    split = desked.client.post(
        f"/desk/contacts/{keep}/split", data={"csrf": token, "identity": str(work.id)}
    )
    new_contact = int(re.search(r"/contacts/(\d+)", split.headers["Location"]).group(1))  # type: ignore[union-attr]
    with desked.store.readers() as session:
        assert session.get(Conversation, second.id).contact_id == new_contact  # type: ignore[union-attr]
        assert session.get(Conversation, first.id).contact_id == keep  # type: ignore[union-attr]
        audited = session.scalars(
            select(Event.kind).where(Event.conversation_id.is_(None)).order_by(Event.id)
        ).all()
    assert list(audited) == ["contact_merged", "contact_split"]
    last = desked.client.post(
        f"/desk/contacts/{new_contact}/split", data={"csrf": token, "identity": str(work.id)}
    )
    assert "only+address" in last.headers["Location"]


def test_inbox_desk_passwd_writes_a_private_file_of_hashes(tmp_path: Path) -> None:
    config = tmp_path / "inbox.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n', encoding="utf-8")
    runner = CliRunner()
    base = ["--config", str(config), "desk"]
    added = runner.invoke(
        main, [*base, "passwd", "aino", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert added.exit_code == 0, added.output
    short = runner.invoke(main, [*base, "passwd", "esko", "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    runner.invoke(
        main, [*base, "passwd", "boss", "--role", "admin", "--password-stdin"], input="x" * 12
    )
    path = tmp_path / "desk-users"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text(encoding="utf-8")
    assert PASSWORD not in text and text.count("$argon2id$") == 2
    assert Users(path).verify("aino", PASSWORD) is not None
    assert Users(path).verify("aino", "wrong password") is None
    listed = runner.invoke(main, [*base, "users"])
    assert listed.output.splitlines() == ["aino\tagent", "boss\tadmin"]
    assert runner.invoke(main, [*base, "remove", "aino"]).exit_code == 0
    assert runner.invoke(main, [*base, "remove", "aino"]).exit_code == 1


def test_a_broken_users_file_keeps_the_users_read_before(tmp_path: Path) -> None:
    path = tmp_path / "desk-users"
    set_password(path, "aino", "agent", PASSWORD)
    users = Users(path)
    assert set(users.all()) == {"aino"}
    path.write_text(path.read_text() + "garbage line without colons\n", encoding="utf-8")
    assert set(users.all()) == {"aino"}
    assert "line 2" in users.problem and "inbox desk passwd" in users.problem
