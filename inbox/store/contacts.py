"""One contact per customer: identities (email, phone, Slack id) resolve to contacts.

Addresses arrive already normalized by the normalizers (lowercased email with an ASCII IDNA
domain, E.164 phone); this module only finds or creates. Creation runs in a savepoint so that
two workers meeting the same new sender on PostgreSQL end with one identity, not an error.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from inbox.store.models import Contact, Identity
from inbox.store.sql import chunked


class IdentityResolver:
    """Finds or creates identities, caching within one batch (one transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._cache: dict[tuple[str, str], Identity] = {}

    def prefetch(self, kind: str, addresses: set[str]) -> None:
        wanted = [a for a in addresses if (kind, a) not in self._cache]
        for chunk in chunked(wanted):
            rows = self.session.scalars(
                select(Identity).where(Identity.kind == kind, Identity.address.in_(chunk))
            )
            for identity in rows:
                self._cache[(kind, identity.address)] = identity

    def resolve_many(
        self,
        kind: str,
        names: dict[str, str],
        also_email: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        """Find or create the identities of all these addresses (address -> display name).

        New senders are common in support mail: creating them all in one savepoint costs two
        multi-row INSERTs instead of a savepoint and a flush per sender (measured: 2 ms each).

        `also_email`: (kind, address) -> an email address the sender is also known by (a
        Slack profile's). A new sender with one joins the contact that already writes from
        that email; if nobody does, the new contact gets the email identity too, so the
        customer's next email lands with them as well. Existing identities are never moved:
        merging two contacts that both have history is a person's decision.
        """
        self.prefetch(kind, set(names))
        links = also_email or {}
        emails = {a: links[(kind, a)] for a in names if (kind, a) in links}
        if kind != "email" and emails:
            self.prefetch("email", set(emails.values()))
        missing = []
        for address in names:
            known = self._cache.get((kind, address))
            if known is None:
                missing.append(address)
            else:
                self._complete(known, names[address], emails.get(address, ""))
        if not missing:
            return
        try:
            with self.session.begin_nested():
                created: list[Identity] = []
                extras: list[Identity] = []
                for address in missing:
                    email = emails.get(address, "")
                    known = self._cache.get(("email", email)) if email else None
                    twin = next((e for e in extras if email and e.address == email), None)
                    if known is not None:
                        contact = known.contact
                    elif twin is not None:
                        contact = twin.contact
                    else:
                        contact = Contact(name=names[address])
                    created.append(
                        Identity(
                            contact=contact,
                            kind=kind,
                            address=address,
                            display_name=names[address],
                        )
                    )
                    if email and known is None and twin is None:
                        extras.append(
                            Identity(
                                contact=contact,
                                kind="email",
                                address=email,
                                display_name=names[address],
                            )
                        )
                self.session.add_all(created + extras)
                self.session.flush()
        except IntegrityError:
            # Another worker created one of them meanwhile: one at a time settles who wins.
            for address in missing:
                self.resolve(kind, address, names[address])
            return
        for identity in created:
            self._cache[(kind, identity.address)] = identity
        for identity in extras:
            self._cache[("email", identity.address)] = identity

    def _complete(self, identity: Identity, name: str, email: str) -> None:
        """What a sender's first message could not tell is filled in from a later one: a
        name (a From without one, a Slack event stored while users.info could not be
        asked), and the email of a Slack profile that nobody writes from yet. Nothing known
        is changed, and no identity moves to another contact."""
        if name and name != identity.address and identity.display_name in ("", identity.address):
            identity.display_name = name
            contact = identity.contact
            if contact.name in ("", identity.address):
                contact.name = name
        if not email or identity.kind == "email" or ("email", email) in self._cache:
            return
        extra = Identity(
            contact_id=identity.contact_id,
            kind="email",
            address=email,
            display_name=identity.display_name,
        )
        try:
            with self.session.begin_nested():
                self.session.add(extra)
                self.session.flush()
        except IntegrityError:  # someone else writes from it after all: theirs it stays
            return
        self._cache[("email", email)] = extra

    def resolve(self, kind: str, address: str, display_name: str = "") -> Identity:
        key = (kind, address)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        identity = self.session.scalar(
            select(Identity).where(Identity.kind == kind, Identity.address == address)
        )
        if identity is None:
            identity = self._create(kind, address, display_name)
        self._cache[key] = identity
        return identity

    def _create(self, kind: str, address: str, display_name: str) -> Identity:
        try:
            with self.session.begin_nested():
                contact = Contact(name=display_name)
                identity = Identity(
                    contact=contact, kind=kind, address=address, display_name=display_name
                )
                self.session.add_all([contact, identity])
                self.session.flush()
            return identity
        except IntegrityError:
            existing = self.session.scalar(
                select(Identity).where(Identity.kind == kind, Identity.address == address)
            )
            if existing is None:
                raise
            return existing
