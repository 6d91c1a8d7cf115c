"""Replies by email against a real SMTP server (aiosmtpd on loopback): what the customer's
client receives, and what the outbox is told when the server says no or goes away."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.base import Outgoing, SendFailed
from connectors.smtp import SmtpConfig, SmtpSender, reply_subject
from tests.smtp_server import PASSWORD, SmtpServer

FINNISH = "Hei Aino,\n\nuusi vetoketju lähtee teille huomenna. Pahoittelut vaivasta!\n\nEsko\n"


@pytest.fixture(autouse=True)
def smtp_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOX_TEST_SMTP_PASSWORD", PASSWORD)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmtpServer]:
    with SmtpServer(tmp_path) as running:
        yield running


def reply(**overrides: object) -> Outgoing:
    values: dict[str, object] = {
        "key": "reply:1",
        "channel": "email",
        "to": "aino@example.fi",
        "to_name": "Aino Virtanen",
        "from_address": "support@northwind.example",
        "text": FINNISH,
        "subject": "Teltan vetoketju rikki",
        "message_id": "inbox.ABCDEFGHJK.x1y2@northwind.example",
        "in_reply_to": "q2@example.fi",
        "references": ("q1@example.fi", "q2@example.fi"),
    }
    values.update(overrides)
    return Outgoing(**values)  # type: ignore[arg-type]


def sender_for(server: SmtpServer, **overrides: object) -> SmtpSender:
    return SmtpSender(SmtpConfig(**server.settings(**overrides)))


def test_a_reply_arrives_threaded_readable_and_marked_as_written_by_a_person(
    server: SmtpServer,
) -> None:
    delivery = sender_for(server, from_name="Northwind Support").send(reply())

    [received] = server.received
    assert received.recipients == ["aino@example.fi"]
    assert received.sender == "support@northwind.example"
    message = received.message
    assert message["Message-ID"] == "<inbox.ABCDEFGHJK.x1y2@northwind.example>"
    assert message["In-Reply-To"] == "<q2@example.fi>"
    assert message["References"] == "<q1@example.fi> <q2@example.fi>"
    assert message["Subject"] == "Re: Teltan vetoketju rikki"
    assert message["From"] == "Northwind Support <support@northwind.example>"
    assert message["To"] == "Aino Virtanen <aino@example.fi>"
    assert message["Auto-Submitted"] == "no"
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message.get_content().replace("\r\n", "\n") == FINNISH
    assert received.data.isascii()  # 7-bit on the wire: any relay takes it
    assert delivery.provider_id == "T00001"
    assert delivery.answer.startswith("250 2.0.0 Ok: queued as T00001")


def test_an_html_alternative_goes_with_the_text(server: SmtpServer) -> None:
    sender_for(server).send(reply(html="<p>Hei Aino,</p><p><strong>uusi</strong> vetoketju</p>"))
    message = server.received[0].message
    assert message.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part.get_content() for part in message.iter_parts()}
    assert parts["text/plain"].replace("\r\n", "\n") == FINNISH
    assert "<strong>uusi</strong>" in parts["text/html"]


def test_implicit_tls_as_on_port_465(tmp_path: Path) -> None:
    with SmtpServer(tmp_path, security="tls") as server:
        sender_for(server).send(reply())
        assert len(server.received) == 1


def test_a_local_mta_without_tls_or_login(tmp_path: Path) -> None:
    with SmtpServer(tmp_path, security="none", auth=False) as server:
        sender_for(server).send(reply())
        assert server.received[0].message["Subject"] == "Re: Teltan vetoketju rikki"


def test_a_certificate_from_another_ca_is_refused_and_nothing_is_sent(
    server: SmtpServer, tmp_path: Path
) -> None:
    import trustme

    stranger = tmp_path / "stranger.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    with pytest.raises(SendFailed, match="not trusted") as failed:
        sender_for(server, ca_file=str(stranger)).send(reply())
    assert failed.value.temporary and not failed.value.unsure
    assert server.received == []


def test_a_wrong_password_is_said_with_the_servers_words(
    server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INBOX_TEST_SMTP_PASSWORD", "wrong")
    with pytest.raises(SendFailed, match=r"refused the login of desk@northwind\.example: 535"):
        sender_for(server).send(reply())
    assert server.received == []


def test_451_is_temporary_and_550_permanent_with_the_reason(server: SmtpServer) -> None:
    server.answer_next("451", "550")
    sender = sender_for(server)
    with pytest.raises(SendFailed, match=r"451 4\.3\.0") as later:
        sender.send(reply())
    assert later.value.temporary
    with pytest.raises(SendFailed, match=r"550 5\.1\.1 <aino@example\.fi>") as never:
        sender.send(reply())
    assert not never.value.temporary
    sender.send(reply())
    assert len(server.received) == 1


def test_a_connection_dropped_after_data_is_unsure_because_the_server_may_have_it(
    server: SmtpServer,
) -> None:
    server.answer_next("drop")
    with pytest.raises(SendFailed, match="may have been accepted") as failed:
        sender_for(server).send(reply())
    assert failed.value.unsure and failed.value.temporary
    assert len(server.received) == 1  # it had it: sending again blindly would send it twice


def test_a_server_that_is_not_there_is_temporary(tmp_path: Path) -> None:
    server = SmtpServer(tmp_path, security="none", auth=False)  # never started: nobody listens
    with pytest.raises(SendFailed, match=r"cannot reach 127\.0\.0\.1") as failed:
        sender_for(server).send(reply())
    assert failed.value.temporary and not failed.value.unsure


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("Teltta", "Re: Teltta"),
        ("Re: Teltta", "Re: Teltta"),
        ("RE: Teltta", "RE: Teltta"),
        ("", "Re: your message"),
    ],
)
def test_the_subject_gets_one_re(original: str, expected: str) -> None:
    assert reply_subject(original) == expected


def test_a_reply_written_in_markdown_also_goes_as_html_with_raw_html_escaped(
    server: SmtpServer,
) -> None:
    text = "Hei Aino,\n\n**Uusi vetoketju** lähtee:\n\n- huomenna\n- ilmaiseksi\n\n<b>Esko</b>"
    sender_for(server).send(reply(text=text))
    message = server.received[0].message
    parts = {part.get_content_type(): part.get_content() for part in message.iter_parts()}
    assert parts["text/plain"].replace("\r\n", "\n").rstrip("\n") == text  # as written
    assert "<strong>Uusi vetoketju</strong>" in parts["text/html"]
    assert "<li>huomenna</li>" in parts["text/html"]
    assert "&lt;b&gt;Esko&lt;/b&gt;" in parts["text/html"]


def test_plain_prose_goes_as_text_alone_and_markdown_can_be_turned_off(
    server: SmtpServer,
) -> None:
    sender_for(server).send(reply())
    sender_for(server, markdown=False).send(reply(text="**ei** HTML:ää"))
    assert [r.message.get_content_type() for r in server.received] == ["text/plain"] * 2


def test_the_customers_message_is_quoted_below_the_reply_when_asked(server: SmtpServer) -> None:
    quoted = "On 2026-11-02 09:01 UTC, Aino Virtanen wrote:\n> Vetoketju meni rikki."
    sender_for(server).send(reply(quoted=quoted))
    sender_for(server, quote=True).send(reply(quoted=quoted))
    plain, with_quote = (
        r.message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
        for r in server.received
    )
    assert "wrote:" not in plain  # quoting is off by default
    assert with_quote.startswith(FINNISH.rstrip())
    assert with_quote.rstrip("\n").endswith(quoted)
