"""Loading the configuration: the file, the environment over it, and errors that say where."""

from __future__ import annotations

from pathlib import Path

import pytest

from inbox.config import ConfigError, load_config
from inbox.service.plugins import build_connectors


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inbox.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_environment_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, 'database_url = "sqlite:///from-file.db"\n[logging]\nlevel = "info"\n')
    monkeypatch.setenv("INBOX_DATABASE_URL", "postgresql://inbox@db/inbox")
    monkeypatch.setenv("INBOX_LOGGING__LEVEL", "debug")
    settings = load_config(path).settings
    assert settings.effective_database_url == "postgresql://inbox@db/inbox"
    assert settings.logging.level == "debug"


def test_without_a_database_url_the_store_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    path = write(tmp_path, 'data_dir = "state"\n')
    settings = load_config(path).settings
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'state' / 'inbox.db'}"


def test_every_problem_is_reported_at_once_with_file_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[threading]\nsubject_window_days = -1\nreopen_window = 3\n[logging]\nlevel = "loud"\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert str(path) in text
    assert "threading.subject_window_days" in text
    assert "threading.reopen_window': unknown setting" in text
    assert "logging.level" in text
    assert len(caught.value.problems) == 3


def test_unknown_language_codes_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[ingest]\nlanguages = ["fi", "xx", "EN"]\n')
    with pytest.raises(ConfigError, match=r"ingest.languages'.*'xx'"):
        load_config(path)


def test_broken_toml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[ingest]\nbatch_size = = 3\n")
    with pytest.raises(ConfigError, match=r"line 2"):
        load_config(path)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


def test_connector_settings_are_checked_by_the_connector(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "\n".join(
            [
                "[[connectors]]",
                'name = "mail"',
                'type = "maildir"',
                'after_ingest = "shred"',
                'colour = "blue"',
                "[[connectors]]",
                'name = "sms"',
                'type = "carrier-pigeon"',
            ]
        ),
    )
    with pytest.raises(ConfigError) as caught:
        build_connectors(load_config(path))
    problems = "\n".join(caught.value.problems)
    assert "connectors.0.path': Field required" in problems
    assert "connectors.0.after_ingest'" in problems
    assert "connectors.0.colour': unknown setting" in problems
    assert "connectors.1.type': unknown connector type 'carrier-pigeon' (imap, maildir" in problems


def test_imap_settings_refuse_an_inline_password_and_say_what_is_missing(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "\n".join(
            [
                "[[connectors]]",
                'name = "mail"',
                'type = "imap"',
                'host = "imap.example.com"',
                'username = "support@example.com"',
                'password = "hunter2"',
                "[[connectors]]",
                'name = "gmail"',
                'type = "imap"',
                'host = "imap.gmail.com"',
                'username = "support@example.com"',
                'auth = "xoauth2"',
                'after_ingest = "move"',
            ]
        ),
    )
    with pytest.raises(ConfigError) as caught:
        build_connectors(load_config(path))
    problems = "\n".join(caught.value.problems)
    assert "connectors.0.password': Value error, a secret is not written in the config" in problems
    assert "hunter2" not in problems
    assert "auth = 'xoauth2' needs token" in problems


def test_two_connectors_with_one_name_are_refused(tmp_path: Path) -> None:
    block = '[[connectors]]\nname = "mail"\ntype = "maildir"\npath = "/x"\n'
    with pytest.raises(ConfigError, match="'mail' is used twice"):
        load_config(write(tmp_path, block + block))


def test_the_example_config_from_init_is_valid(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from inbox.cli import main

    result = CliRunner().invoke(main, ["init", str(tmp_path)])
    assert result.exit_code == 0, result.output
    loaded = load_config(tmp_path / "inbox.toml")
    (maildir,) = build_connectors(loaded)
    assert maildir.name == "support-maildir"
    assert loaded.settings.rules_file == tmp_path / "rules.yaml"
