"""`inbox desk passwd|users|remove`: who may log in to the web desk (the users file of
[desk] users_file, default desk-users in data_dir). The daemon reads the file again when it
changes: no restart."""

from __future__ import annotations

import sys

import click

from inbox.cli.context import AppContext, pass_app
from inbox.desk.users import ROLES, Users, UsersFileError, remove_user, set_password

MIN_PASSWORD = 10


@click.group("desk")
def desk() -> None:
    """The web desk's users."""


@desk.command("passwd")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="agent", show_default=True)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (one line), for scripts; else it is asked.",
)
@pass_app
def passwd(app: AppContext, name: str, role: str, password_stdin: bool) -> None:
    """Add NAME (an agent of the rules file, or an admin) or set their password. Their open
    sessions end."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD:
        raise click.ClickException(f"a password has at least {MIN_PASSWORD} characters")
    path = app.config().settings.desk_users_file
    try:
        new = set_password(path, name, role, password)
    except (UsersFileError, OSError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{'added' if new else 'changed'} {name} ({role}) in {path}")


@desk.command("users")
@pass_app
def users(app: AppContext) -> None:
    """Who may log in."""
    path = app.config().settings.desk_users_file
    found = Users(path).all()
    if not found:
        click.echo(f"no users in {path}: the desk is off (inbox desk passwd NAME)", err=True)
    for user in found.values():
        click.echo(f"{user.name}\t{user.role}")


@desk.command("remove")
@click.argument("name")
@pass_app
def remove(app: AppContext, name: str) -> None:
    """NAME may no longer log in; their open sessions end."""
    path = app.config().settings.desk_users_file
    if not remove_user(path, name):
        raise click.ClickException(f"no user {name} in {path}")
    click.echo(f"removed {name} from {path}")
