"""Identities: one contact per sender, even when two workers meet a new sender at once."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from inbox.contacts import IdentityResolver
from inbox.models import Contact, Identity
from tests.conftest import BACKENDS, Store


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
