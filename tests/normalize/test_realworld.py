"""The real-world classes of mail that came out wrong, as fixtures written here
(tests/normalize/realworld.py): each decodes to what its writer meant."""

from __future__ import annotations

import pytest

from inbox.normalize.email import normalize_email
from tests.normalize.realworld import FIXTURES, Fixture, mismatches


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f"{f.kind}/{f.name}")
def test_real_world_mail_reads_as_its_writer_meant(fixture: Fixture) -> None:
    assert mismatches(fixture, normalize_email(fixture.raw)) == []
