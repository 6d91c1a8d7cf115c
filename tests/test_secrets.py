"""Secrets come from files, the environment, systemd credentials or a command; never the config."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from inbox.secrets import Secret, SecretError, SecretSource


class _Holder(BaseModel):
    password: SecretSource


def test_a_secret_written_in_the_config_is_refused_with_the_ways_to_give_it() -> None:
    with pytest.raises(ValidationError) as raised:
        _Holder(password="hunter2")  # type: ignore[arg-type]
    # What the config loader reports (inbox.config shows each error's msg, not its input).
    text = raised.value.errors()[0]["msg"]
    assert "not written in the config" in text and "credential" in text
    assert "hunter2" not in text


def test_exactly_one_source() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        SecretSource(file=Path("/x"), env="X")
    with pytest.raises(ValidationError, match="exactly one"):
        SecretSource()


def test_file_is_read_at_each_use_so_a_rotated_password_is_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_text("first\n", encoding="utf-8")
    secret = Secret(SecretSource(file=path))
    assert secret.get() == "first"
    path.write_text("second\n", encoding="utf-8")
    assert secret.get() == "second"
    assert "first" not in repr(secret) and str(path) in repr(secret)


def test_missing_sources_say_where_they_looked_not_what(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INBOX_TEST_NO_SUCH", raising=False)
    with pytest.raises(SecretError, match="INBOX_TEST_NO_SUCH is not set"):
        Secret(SecretSource(env="INBOX_TEST_NO_SUCH")).get()
    with pytest.raises(SecretError, match=r"cannot read file .*No such file"):
        Secret(SecretSource(file=tmp_path / "absent")).get()
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(SecretError, match="LoadCredential"):
        Secret(SecretSource(credential="imap-password")).get()


def test_systemd_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "imap-password").write_text("from-systemd", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert Secret(SecretSource(credential="imap-password")).get() == "from-systemd"


def _token_command(tmp_path: Path, answers: list[str]) -> list[str]:
    """A command printing the next of `answers` each time it runs."""
    state = tmp_path / "answers.json"
    state.write_text(json.dumps(answers), encoding="utf-8")
    script = (
        "import json, sys; p = sys.argv[1]; a = json.load(open(p)); "
        "print(a.pop(0)); json.dump(a, open(p, 'w'))"
    )
    return [sys.executable, "-c", script, str(state)]


def test_token_command_is_cached_until_it_expires_or_is_refused(tmp_path: Path) -> None:
    command = _token_command(
        tmp_path,
        [
            json.dumps({"access_token": "t1", "expires_in": 3600}),
            json.dumps({"access_token": "t2", "expires_in": 30}),  # within the margin: 0 s
            "t3",
            "t4",
        ],
    )
    secret = Secret(SecretSource(command=command))
    assert secret.get() == "t1"
    assert secret.get() == "t1"  # cached: an hour left
    secret.forget()  # the server refused it
    assert secret.get() == "t2"
    assert secret.get() == "t3"  # t2 expired at once (30 s is inside the renewal margin)
    assert secret.get() == "t3"  # a bare token has no expiry: kept until refused


def test_a_failing_token_command_says_why_without_its_output(tmp_path: Path) -> None:
    script = "import sys; print('leaked-token'); sys.stderr.write('refresh token expired'); exit(3)"
    secret = Secret(SecretSource(command=[sys.executable, "-c", script]))
    with pytest.raises(SecretError) as raised:
        secret.get()
    assert "exited with 3" in str(raised.value) and "refresh token expired" in str(raised.value)
    assert "leaked-token" not in str(raised.value)
