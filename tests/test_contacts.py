"""Identities: one contact per sender, even when two workers meet a new sender at once."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from inbox.store.contacts import IdentityResolver
from inbox.store.models import Contact, Identity, Message
from tests.conftest import BACKENDS, Store
from tests.helpers import count, ingest, mail, make_pipeline, raw


@BACKENDS
def test_two_workers_creating_the_same_new_senders_end_with_one_contact_each(store: Store) -> None:
    senders = {"aino@esimerkki.fi": "Aino", "mart@naide.ee": "Mart"}
    first = store.writers()
    first.begin()
    IdentityResolver(first).resolve_many("email", senders)
    first.flush()  # rows written, not committed: the second worker must wait, then find them

    outcome: dict[str, int] = {}

    def second_worker() -> None:
        with store.writers() as session, session.begin():
            resolver = IdentityResolver(session)
            resolver.resolve_many("email", {**senders, "olga@primer.example": "Olga"})
            outcome["aino_contact"] = resolver.resolve("email", "aino@esimerkki.fi").contact_id

    worker = threading.Thread(target=second_worker)
    worker.start()
    worker.join(timeout=1)
    assert worker.is_alive(), "the second worker should wait for the first one's commit"
    first.commit()
    aino_contact = IdentityResolver(first).resolve("email", "aino@esimerkki.fi").contact_id
    first.close()
    worker.join(timeout=30)
    assert not worker.is_alive()
    with store.readers() as session:
        assert session.scalar(select(func.count()).select_from(Identity)) == 3
        assert session.scalar(select(func.count()).select_from(Contact)) == 3
    assert outcome["aino_contact"] == aino_contact


def _identities(store: Store) -> dict[tuple[str, str], tuple[int, str, str]]:
    """(kind, address) -> (contact id, identity's display name, contact's name)."""
    with store.readers() as session:
        return {
            (i.kind, i.address): (i.contact_id, i.display_name, i.contact.name)
            for i in session.scalars(select(Identity))
        }


def _resolve(
    store: Store, kind: str, names: dict[str, str], emails: dict[str, str] | None = None
) -> None:
    with store.writers() as session, session.begin():
        links = {(kind, address): email for address, email in (emails or {}).items()}
        IdentityResolver(session).resolve_many(kind, names, also_email=links)


@BACKENDS
def test_a_slack_sender_first_stored_without_a_profile_gets_its_name_and_email_later(
    store: Store,
) -> None:
    # A Slack event stored while users.info was unreachable knows only the user id.
    _resolve(store, "slack", {"UANNA": "UANNA"})
    [(contact, display, name)] = _identities(store).values()
    assert display == name == "UANNA"
    _resolve(store, "slack", {"UANNA": "Anna Virtanen"}, {"UANNA": "anna@esimerkki.fi"})
    identities = _identities(store)
    assert identities[("slack", "UANNA")] == (contact, "Anna Virtanen", "Anna Virtanen")
    assert identities[("email", "anna@esimerkki.fi")][0] == contact
    # Her next email lands with the same contact, not a new one.
    _resolve(store, "email", {"anna@esimerkki.fi": "Anna Virtanen"})
    with store.readers() as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 1


@BACKENDS
def test_a_known_name_is_never_overwritten_by_a_later_message(store: Store) -> None:
    _resolve(store, "email", {"mart@naide.ee": "Mart Tamm"})
    _resolve(store, "email", {"mart@naide.ee": "M. Tamm (work)"})
    _resolve(store, "email", {"mart@naide.ee": ""})
    [(_, display, name)] = _identities(store).values()
    assert display == name == "Mart Tamm"


@BACKENDS
def test_an_email_another_contact_writes_from_stays_theirs(store: Store) -> None:
    _resolve(store, "email", {"shared@naide.ee": "Front desk"})
    _resolve(store, "slack", {"UMART": "UMART"})
    # Mart's Slack profile names an address that another contact already writes from.
    _resolve(store, "slack", {"UMART": "Mart Tamm"}, {"UMART": "shared@naide.ee"})
    identities = _identities(store)
    desk, mart = identities[("email", "shared@naide.ee")], identities[("slack", "UMART")]
    assert desk[0] != mart[0]
    assert desk[1:] == ("Front desk", "Front desk")
    assert mart[1:] == ("Mart Tamm", "Mart Tamm")
    assert len(identities) == 2


@BACKENDS
def test_an_address_written_with_other_capitals_is_the_same_contact_shown_as_written(
    store: Store,
) -> None:
    pipeline = make_pipeline(store)
    first = ingest(pipeline, raw(mail(sender="Taro <Taro.Yamada.@Docomo.NE.jp>")))
    again = ingest(pipeline, raw(mail(sender="taro.yamada.@docomo.ne.jp", subject="Toinen")))
    assert first.stored == again.stored == 1
    assert count(store, Contact) == 1
    with store.readers() as session:
        shown = sorted(session.scalars(select(Message.from_address)))
        identity = session.scalars(select(Identity)).one()
    assert shown == ["Taro.Yamada.@docomo.ne.jp", "taro.yamada.@docomo.ne.jp"]
    assert identity.address == "taro.yamada.@docomo.ne.jp"
