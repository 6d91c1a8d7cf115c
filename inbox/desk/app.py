"""The agents' web desk: a WSGI application (Werkzeug) that the daemon's web server mounts at
/desk, rendered on the server with Jinja2 (every value escaped) and htmx for the queue's
live rows; no JavaScript of our own, no build step.

Every action goes through the writers the CLI and the Slack buttons use (inbox/routing/), in
one transaction each, named `person:NAME` in the history. Requests are refused before any
work unless the user is logged in (or named by a trusted proxy), and every POST must carry the
session's CSRF token and come from this site."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import structlog
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import Forbidden, HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.utils import send_file
from werkzeug.wrappers import Request, Response

from inbox.config import DeskSettings
from inbox.desk.actions import ACTIONS, REFUSALS
from inbox.desk.contacts_page import contact_view, find_contacts
from inbox.desk.history import conversation_view
from inbox.desk.queue import CHANNELS, SLA_STATES, SORTS, STATUSES, QueueFilter, queue_page
from inbox.desk.rules_page import check_candidate, rules_text, try_message
from inbox.desk.sessions import COOKIE, DeskSession, Sessions
from inbox.desk.users import User, Users
from inbox.normalize.email import DEFAULT_LANGUAGES
from inbox.routing.contacts import CannotChangeContact, merge_contacts, split_identity
from inbox.store.db import transaction
from inbox.store.models import Attachment, Blob, RawRecord, utcnow
from rules.holder import RulesInForce
from rules.model import PRIORITIES, RuleSet

log = structlog.get_logger(__name__)

STATIC = Path(__file__).parent / "static"
LOGIN_COOKIE = "inbox_desk_login"
#: A name is refused this long after this many failed logins in a row.
LOCKOUT_FAILURES = 5
LOCKOUT_SECONDS = 60.0
SECURITY_HEADERS = {
    # No inline script or style anywhere: customer text that slipped through escaping still
    # could not run. htmx is told not to add its own style element (base.html).
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Viewer:
    """Who is asking, and the token their forms carry."""

    user: User
    session: DeskSession
    csrf: str
    zone: tzinfo


class Desk:
    def __init__(
        self,
        settings: DeskSettings,
        *,
        writers: sessionmaker[Session],
        readers: sessionmaker[Session],
        users: Users,
        sessions: Sessions,
        max_body_bytes: int = 1024 * 1024,
        prefix: str = "/desk",
        acted: Callable[[], None] = lambda: None,
        rules: RulesInForce | None,
        languages: Sequence[str] = DEFAULT_LANGUAGES,
    ) -> None:
        self.acted = acted
        self.rules = rules
        self.languages = list(languages)
        self.settings = settings
        self.prefix = prefix
        self.writers = writers
        self.readers = readers
        self.users = users
        self.sessions = sessions
        self.max_body_bytes = max_body_bytes
        self._failures: dict[str, tuple[int, float]] = {}
        self._failures_lock = threading.Lock()
        self.templates = Environment(
            loader=PackageLoader("inbox.desk", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["when"] = _when
        self.templates.filters["span"] = _span
        self.templates.globals["query"] = _query
        self.urls = Map(
            [
                Rule("/", endpoint="queue", methods=["GET"]),
                Rule("/queue/rows", endpoint="queue_rows", methods=["GET"]),
                Rule("/login", endpoint="login", methods=["GET", "POST"]),
                Rule("/logout", endpoint="logout", methods=["POST"]),
                Rule("/c/<int:conversation_id>", endpoint="conversation", methods=["GET"]),
                Rule("/c/<int:conversation_id>/<action>", endpoint="act", methods=["POST"]),
                Rule("/raw/<int:message_id>", endpoint="raw", methods=["GET"]),
                Rule("/attachments/<int:attachment_id>", endpoint="attachment", methods=["GET"]),
                Rule("/rules", endpoint="rules", methods=["GET"]),
                Rule("/rules/test", endpoint="rules_test", methods=["POST"]),
                Rule("/rules/check", endpoint="rules_check", methods=["POST"]),
                Rule("/contacts", endpoint="contacts", methods=["GET"]),
                Rule("/contacts/<int:contact_id>", endpoint="contact", methods=["GET"]),
                Rule(
                    "/contacts/<int:contact_id>/<change>",
                    endpoint="contact_change",
                    methods=["POST"],
                ),
                Rule("/static/<name>", endpoint="static", methods=["GET"]),
            ],
            strict_slashes=False,
        )

    # -- WSGI --------------------------------------------------------------------------------

    @property
    def open(self) -> bool:
        """Off until someone can log in: a fresh install serves no login page to the world."""
        if not self.settings.enabled:
            return False
        return self.settings.auth == "proxy" or bool(self.users.all())

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = self.max_body_bytes
        request.max_form_memory_size = self.max_body_bytes
        response = self.respond(request)
        response.headers.update(
            {k: v for k, v in SECURITY_HEADERS.items() if k not in response.headers}
        )
        return response(environ, start_response)

    def respond(self, request: Request) -> Response:
        if not self.open:
            return Response(
                "The web desk is off: no user can log in yet. Add one with "
                '`inbox desk passwd NAME` (or set [desk] auth = "proxy").\n',
                status=404,
                mimetype="text/plain",
            )
        adapter = self.urls.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
            if endpoint == "static":
                return self._static(request, values["name"])
            if endpoint == "login":
                return self._login(request)
            if request.method == "POST":
                self._check_origin(request)
            viewer = self._viewer(request)
            if viewer is None:
                return self._to_login(request)
            if request.method == "POST" and not self.sessions.csrf_ok(
                viewer.session, request.form.get("csrf") or request.headers.get("X-CSRF-Token")
            ):
                log.warning("desk_csrf_refused", user=viewer.user.name, path=request.path)
                raise Forbidden("this form has expired: reload the page and try again")
            response: Response = getattr(self, f"_{endpoint}")(request, viewer, **values)
            return response
        except HTTPException as error:
            return self._error(error)
        except Exception:
            log.exception("desk_page_failed", path=request.path)
            return Response(
                "internal error (the daemon's log says more)\n", 500, mimetype="text/plain"
            )

    # -- who is asking -----------------------------------------------------------------------

    def _viewer(self, request: Request) -> Viewer | None:
        if self.settings.auth == "proxy":
            user = self._proxied_user(request)
            if user is None:
                return None
            # The proxy keeps the session; the CSRF token is keyed by the name (and our secret).
            session = DeskSession(user.name, f"proxy:{user.name}", "proxy")
        else:
            read = self.sessions.read(request.cookies.get(COOKIE))
            if read is None:
                return None
            session = read
            user = self.users.get(session.user)
            if user is None or user.fingerprint != session.fingerprint:
                return None  # removed, or the password changed since
            if self._not_an_agent(user):
                return None  # taken out of the rules file since
        return Viewer(user, session, self.sessions.csrf_token(session), self._zone_of(user.name))

    def _proxied_user(self, request: Request) -> User | None:
        remote = request.remote_addr or ""
        name = request.headers.get(self.settings.proxy_header, "").strip()
        if remote not in self.settings.trusted_proxies:
            if name:
                log.warning("desk_proxy_header_untrusted", remote=remote)
            return None
        if not name:
            return None
        listed = self.users.get(name)
        if listed is not None:
            return listed
        ruleset = self.ruleset()
        if ruleset is not None and name in ruleset.agents:
            return User(name, "agent")
        log.warning("desk_proxy_user_unknown", user=name)
        raise Forbidden(f"{name} is no agent of the rules file and no desk user")

    def _not_an_agent(self, user: User) -> bool:
        """Agents log in as the rules file names them; an admin need not be one (a lead)."""
        ruleset = self.ruleset()
        return not user.admin and ruleset is not None and user.name not in ruleset.agents

    def _zone_of(self, name: str) -> tzinfo:
        ruleset = self.ruleset()
        agent = ruleset.agents.get(name) if ruleset is not None else None
        return agent.hours.zone if agent is not None and agent.hours is not None else UTC

    def _check_origin(self, request: Request) -> None:
        """A POST from another site is refused even before its token is looked at."""
        origin = request.headers.get("Origin") or request.headers.get("Referer")
        if origin and urlsplit(origin).netloc != request.host:
            log.warning("desk_cross_site_refused", origin=origin[:200], path=request.path)
            raise Forbidden("a form from another site")

    def _to_login(self, request: Request) -> Response:
        asked = request.script_root + request.full_path.rstrip("?")
        target = self._url(f"/login?{urlencode({'next': asked})}")
        if request.headers.get("HX-Request"):
            return Response("", 401, headers={"HX-Redirect": target})
        if self.settings.auth == "proxy":
            raise Forbidden("the proxy in front did not say who you are")
        return Response("", 303, headers={"Location": target})

    # -- login -------------------------------------------------------------------------------

    def _login(self, request: Request) -> Response:
        if self.settings.auth == "proxy":
            return Response("", 303, headers={"Location": self._url("/")})
        pre = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(16)
        token = self.sessions.csrf_token(DeskSession("", pre, ""))
        next_page = _local(request.values.get("next", ""), self._url("/"))
        problem = ""
        if request.method == "POST":
            self._check_origin(request)
            name = request.form.get("name", "").strip()[:100]
            if not self.sessions.csrf_ok(DeskSession("", pre, ""), request.form.get("csrf")):
                problem = "The form had expired: try again."
            elif self._locked(name):
                problem = "Too many failed attempts: wait a minute and try again."
            else:
                user = self.users.verify(name, request.form.get("password", ""))
                if user is not None and self._not_an_agent(user):
                    log.warning("desk_login_refused", user=name, reason="no agent of the rules")
                    problem = f"{name} is no agent of the rules file: ask an admin."
                elif user is not None:
                    self._failed(name, reset=True)
                    _, cookie = self.sessions.open(user.name, user.fingerprint)
                    log.info("desk_login", user=user.name, remote=request.remote_addr)
                    response = Response("", 303, headers={"Location": next_page})
                    self._set_cookie(response, COOKIE, cookie, self.sessions.max_age_seconds)
                    response.delete_cookie(LOGIN_COOKIE, path=self._url("/"))
                    return response
                else:
                    self._failed(name)
                    log.warning("desk_login_failed", user=name, remote=request.remote_addr)
                    problem = "Wrong name or password."
        html = self._render(
            "login.html", None, csrf=token, next=next_page, problem=problem, title="Log in"
        )
        response = Response(html, 401 if problem else 200, mimetype="text/html")
        self._set_cookie(response, LOGIN_COOKIE, pre, 3600)
        return response

    def _locked(self, name: str) -> bool:
        with self._failures_lock:
            failures, until = self._failures.get(name, (0, 0.0))
            return failures >= LOCKOUT_FAILURES and time.monotonic() < until

    def _failed(self, name: str, *, reset: bool = False) -> None:
        with self._failures_lock:
            if reset:
                self._failures.pop(name, None)
                return
            failures, _ = self._failures.get(name, (0, 0.0))
            if failures >= LOCKOUT_FAILURES:
                failures = 0  # the lock-out is over: count again
            self._failures[name] = (failures + 1, time.monotonic() + LOCKOUT_SECONDS)
            if len(self._failures) > 10_000:  # names made up by a scanner do not pile up
                self._failures.clear()

    def _logout(self, request: Request, viewer: Viewer) -> Response:
        log.info("desk_logout", user=viewer.user.name)
        response = Response("", 303, headers={"Location": self._url("/login")})
        response.delete_cookie(COOKIE, path=self._url("/"))
        return response

    # -- pages -------------------------------------------------------------------------------

    def _queue(self, request: Request, viewer: Viewer) -> Response:
        return self._page("queue.html", viewer, **self._queue_values(request, viewer))

    def _queue_rows(self, request: Request, viewer: Viewer) -> Response:
        return self._page("queue_rows.html", viewer, **self._queue_values(request, viewer))

    def _queue_values(self, request: Request, viewer: Viewer) -> dict[str, Any]:
        chosen = QueueFilter.from_args(request.args, me=viewer.user.name)
        with self.readers() as session:
            page = queue_page(session, chosen, utcnow(), self.settings.page_size)
            ruleset = self.ruleset()
            return {
                "title": "Queue",
                "chosen": chosen,
                "page": page,
                "rows": [
                    {
                        "c": row.conversation,
                        "tags": [tag.name for tag in row.conversation.tags],
                        "sender": row.sender,
                        "sla": row.sla_state,
                        "due": row.due,
                    }
                    for row in page.rows
                ],
                "statuses": STATUSES,
                "priorities": PRIORITIES,
                "sla_states": SLA_STATES,
                "channels": CHANNELS,
                "sorts": SORTS,
                "teams": sorted(ruleset.teams) if ruleset is not None else [],
                "agents": sorted(ruleset.agents) if ruleset is not None else [],
                "refresh": self.settings.refresh_seconds,
            }

    def _conversation(self, request: Request, viewer: Viewer, conversation_id: int) -> Response:
        with self.readers() as session:
            view = conversation_view(
                session,
                conversation_id,
                self.ruleset(),
                utcnow(),
                full=bool(request.args.get("full")),
            )
            if view is None:
                raise NotFound(f"no conversation {conversation_id}")
            answers = self.rules.answers.names() if self.rules is not None else []
            html = self._render(
                "conversation.html",
                viewer,
                title=f"#{conversation_id} {view.conversation.subject or '(no subject)'}",
                view=view,
                answers=answers,
                priorities=PRIORITIES,
                notice=request.args.get("done", "")[:300],
                problem=request.args.get("problem", "")[:300],
            )
        return Response(html, mimetype="text/html")

    def _act(self, request: Request, viewer: Viewer, conversation_id: int, action: str) -> Response:
        handler = ACTIONS.get(action)
        if handler is None:
            raise NotFound(f"no action {action}")
        target = self._url(f"/c/{conversation_id}")
        try:
            with transaction(self.writers) as session:
                done = handler(
                    session,
                    conversation_id,
                    request.form,
                    person=viewer.user.name,
                    ruleset=self.ruleset(),
                    answers=self.rules.answers.current() if self.rules is not None else None,
                    zone=viewer.zone,
                )
        except REFUSALS as refused:
            return _see(f"{target}?{urlencode({'problem': str(refused)})}")
        log.info("desk_action", action=action, conversation=conversation_id, user=viewer.user.name)
        self.acted()
        return _see(f"{target}?{urlencode({'done': done})}")

    def _raw(self, request: Request, viewer: Viewer, message_id: int) -> Response:
        """The bytes as they arrived, as a download: never rendered by the browser."""
        with self.readers() as session:
            record = session.scalars(
                select(RawRecord).where(RawRecord.message_id == message_id).limit(1)
            ).first()
            if record is None:
                raise NotFound(f"no raw record of message {message_id}")
            name = f"message-{message_id}.{'eml' if record.channel == 'email' else 'json'}"
            return _download(record.payload, name, "application/octet-stream")

    def _attachment(self, request: Request, viewer: Viewer, attachment_id: int) -> Response:
        with self.readers() as session:
            attachment = session.get(Attachment, attachment_id)
            blob = session.get(Blob, attachment.sha256) if attachment is not None else None
            if attachment is None or blob is None:
                raise NotFound(f"no attachment {attachment_id}")
            name = attachment.filename or f"attachment-{attachment_id}"
            return _download(blob.data, name, attachment.content_type)

    def _rules(
        self,
        request: Request,
        viewer: Viewer,
        *,
        tried: Any = None,
        checked: Any = None,
        candidate: str = "",
    ) -> Response:
        if self.rules is None:
            raise NotFound("no rules file is configured (rules_file in the config)")
        compiled = self.rules.current
        return self._page(
            "rules.html",
            viewer,
            title="Rules",
            path=str(self.rules.path),
            version=compiled.version,
            ruleset=compiled.ruleset,
            text=rules_text(self.rules),
            reloads=(self.rules.reloads, self.rules.failed_reloads),
            tried=tried,
            checked=checked,
            candidate=candidate,
            form=request.form,
        )

    def _rules_test(self, request: Request, viewer: Viewer) -> Response:
        """Any agent may try a message: it changes nothing."""
        if self.rules is None:
            raise NotFound("no rules file is configured")
        tried = try_message(self.rules.current, request.form, utcnow(), self.languages)
        return self._rules(request, viewer, tried=tried)

    def _rules_check(self, request: Request, viewer: Viewer) -> Response:
        """An admin's candidate: checked, and replayed over history when asked."""
        if not viewer.user.admin:
            raise Forbidden("checking and replaying a candidate is for admins")
        if self.rules is None:
            raise NotFound("no rules file is configured")
        text = request.form.get("candidate", "")
        since = request.form.get("since", "7d").strip() or "7d"
        with self.readers() as session:
            checked = check_candidate(
                session if request.form.get("replay") else None,
                self.rules,
                text,
                since=since,
                now=utcnow(),
            )
            log.info("desk_rules_checked", user=viewer.user.name, problems=len(checked.problems))
            return self._rules(request, viewer, checked=checked, candidate=text)

    def _contacts(self, request: Request, viewer: Viewer) -> Response:
        text = request.args.get("q", "")
        with self.readers() as session:
            found = find_contacts(session, text)
            html = self._render("contacts.html", viewer, title="Contacts", q=text, found=found)
        return Response(html, mimetype="text/html")

    def _contact(self, request: Request, viewer: Viewer, contact_id: int) -> Response:
        with self.readers() as session:
            view = contact_view(session, contact_id)
            if view is None:
                raise NotFound(f"no contact {contact_id}")
            html = self._render(
                "contact.html",
                viewer,
                title=view.contact.name or f"Contact {contact_id}",
                view=view,
                notice=request.args.get("done", "")[:300],
                problem=request.args.get("problem", "")[:300],
            )
        return Response(html, mimetype="text/html")

    def _contact_change(
        self, request: Request, viewer: Viewer, contact_id: int, change: str
    ) -> Response:
        """Merge another contact into this one, or split an address off; audited."""
        target = self._url(f"/contacts/{contact_id}")
        try:
            with transaction(self.writers) as session:
                if change == "merge":
                    other = _number(request.form.get("other", ""))
                    done = merge_contacts(session, contact_id, other, person=viewer.user.name)
                    said = (
                        f"Contact {other} merged: {done.identities} addresses, "
                        f"{done.conversations} conversations."
                    )
                elif change == "split":
                    identity = _number(request.form.get("identity", ""))
                    done = split_identity(session, identity, person=viewer.user.name)
                    target = self._url(f"/contacts/{done.contact_id}")
                    said = (
                        f"Split off as contact {done.contact_id}, "
                        f"{done.conversations} conversations."
                    )
                else:
                    raise NotFound(f"no change {change}")
        except CannotChangeContact as refused:
            return _see(f"{target}?{urlencode({'problem': str(refused)})}")
        log.info("desk_contact_changed", change=change, contact=contact_id, user=viewer.user.name)
        return _see(f"{target}?{urlencode({'done': said})}")

    def _static(self, request: Request, name: str) -> Response:
        """htmx and the style sheet, the only files served without a login (the login page
        uses them)."""
        if name not in {"htmx.min.js", "desk.css"}:
            raise NotFound(name)
        response = send_file(STATIC / name, request.environ, max_age=3600)
        response.direct_passthrough = False
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response

    # -- rendering ---------------------------------------------------------------------------

    def _page(self, template: str, viewer: Viewer, **values: Any) -> Response:
        response = Response(self._render(template, viewer, **values), mimetype="text/html")
        return response

    def _render(self, template: str, viewer: Viewer | None, **values: Any) -> str:
        return self.templates.get_template(template).render(
            viewer=viewer,
            base=self._url(""),
            proxy=self.settings.auth == "proxy",
            **values,
        )

    def ruleset(self) -> RuleSet | None:
        """The rules in force now (a reload shows at the next request)."""
        return self.rules.current.ruleset if self.rules is not None else None

    def _url(self, path: str) -> str:
        return f"{self.prefix}{path}"

    def _set_cookie(self, response: Response, name: str, value: str, max_age: float) -> None:
        response.set_cookie(
            name,
            value,
            max_age=int(max_age),
            path=self._url("/"),
            httponly=True,
            secure=self.settings.secure_cookies,
            samesite="Lax",
        )

    def _error(self, error: HTTPException) -> Response:
        html = self._render(
            "error.html", None, title=error.name, code=error.code, message=error.description
        )
        return Response(html, error.code or 500, mimetype="text/html")


def _number(text: str) -> int:
    try:
        return int(text.strip().lstrip("#"))
    except ValueError:
        raise CannotChangeContact(f"{text[:40]!r} is not a contact's or address's number") from None


def _see(location: str) -> Response:
    return Response("", 303, headers={"Location": location})


def _download(data: bytes, name: str, content_type: str) -> Response:
    """Served so that no browser shows it as a page of ours: an attachment, with a sandbox."""
    response = Response(data, mimetype=content_type or "application/octet-stream")
    response.headers.set("Content-Disposition", "attachment", filename=name)
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


def _local(target: str, default: str) -> str:
    """Only a path on this site: `?next=https://evil.example` goes to the queue instead."""
    parts = urlsplit(target)
    if target.startswith("/") and not target.startswith("//") and not parts.netloc:
        return target
    return default


def _when(value: datetime | None, zone: tzinfo = UTC) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M") if value else ""


def _span(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return ""
    seconds = int((moment - now).total_seconds())
    minutes = abs(seconds) // 60
    text = (
        f"{minutes} min"
        if minutes < 120
        else f"{minutes // 60} h"
        if minutes < 2880
        else f"{minutes // 1440} d"
    )
    return f"in {text}" if seconds >= 0 else f"{text} ago"


def _query(args: dict[str, str]) -> str:
    return urlencode(args)
