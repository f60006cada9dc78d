"""Who may act: `governance user`, `token` and `builder`."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from governance.cli.common import DatabaseOption, err, fail, out, service

user_app = typer.Typer(
    help="People who sign in: add, list, disable, unlock, change or reset a password.",
    no_args_is_help=True,
)
token_app = typer.Typer(help="API tokens for CI and serving systems.", no_args_is_help=True)
builder_app = typer.Typer(
    help="CI builders whose signed provenance a policy may trust: add, list, revoke.",
    no_args_is_help=True,
)


@user_app.command("add")
def user_add(
    username: str,
    full_name: Annotated[str, typer.Option("--name", help="Full name, as signatures show it.")],
    roles: Annotated[list[str], typer.Option("--role", help="A role; repeat for several.")],
    database: DatabaseOption = None,
) -> None:
    """Add a person; the password is asked for (or read from GOVERNANCE_USER_PASSWORD)."""
    from governance.services.people import SYSTEM

    password = os.environ.get("GOVERNANCE_USER_PASSWORD") or getpass.getpass("Password: ")
    with service(database) as governance:
        user = governance.people.add_user(SYSTEM, username, full_name, password, roles)
    out.print(f"[green]✓[/] user {escape(user.username)} with roles {', '.join(user.roles)}")


@user_app.command("list")
def user_list(database: DatabaseOption = None) -> None:
    """Every user with roles and whether disabled."""
    with service(database) as governance:
        table = Table("user", "name", "roles", "disabled")
        for user in governance.people.list_users():
            table.add_row(user.username, user.full_name, ", ".join(user.roles), str(user.disabled))
    out.print(table)


@user_app.command("disable")
def user_disable(username: str, database: DatabaseOption = None) -> None:
    """Disable a person: their sessions end and they cannot sign in or sign."""
    from governance.services.people import SYSTEM

    with service(database) as governance:
        governance.people.set_disabled(SYSTEM, username, True)
    out.print(f"[green]✓[/] {escape(username)} disabled")


@user_app.command("unlock")
def user_unlock(username: str, database: DatabaseOption = None) -> None:
    """End a sign-in lockout (ten failures in a row lock an account for 15 minutes)."""
    from governance.services.people import SYSTEM

    with service(database) as governance:
        done = governance.people.unlock(SYSTEM, username)
    state = "unlocked" if done.unlocked else "was not locked; its failure count is cleared"
    out.print(f"[green]✓[/] {escape(username)} {state}")


@user_app.command("passwd")
def user_passwd(username: str, database: DatabaseOption = None) -> None:
    """Change your own password: the current one, then the new one, are asked for (or read
    from GOVERNANCE_CURRENT_PASSWORD and GOVERNANCE_NEW_PASSWORD). Your sessions end."""
    current = os.environ.get("GOVERNANCE_CURRENT_PASSWORD") or getpass.getpass("Current: ")
    new = os.environ.get("GOVERNANCE_NEW_PASSWORD") or getpass.getpass("New password: ")
    with service(database) as governance:
        done = governance.people.change_password(username, current, new, None)
    out.print(f"[green]✓[/] password changed; {done.sessions_ended} session(s) ended")


@user_app.command("reset-password")
def user_reset_password(username: str, database: DatabaseOption = None) -> None:
    """Set a person's password as an administrator (asked for, or read from
    GOVERNANCE_USER_PASSWORD): their sessions end and a lockout is lifted."""
    from governance.services.people import SYSTEM

    password = os.environ.get("GOVERNANCE_USER_PASSWORD") or getpass.getpass("New password: ")
    with service(database) as governance:
        done = governance.people.reset_password(SYSTEM, username, password)
    out.print(
        f"[green]✓[/] {escape(username)} has a new password; {done.sessions_ended} session(s) ended"
    )


@token_app.command("create")
def token_create(
    name: str,
    roles: Annotated[list[str], typer.Option("--role", help="A role; repeat for several.")],
    days: Annotated[int | None, typer.Option(help="Expire after this many days.")] = None,
    owner: Annotated[
        str | None,
        typer.Option(
            help="The person (user name) accountable for what the token does; "
            "default: the first admin."
        ),
    ] = None,
    database: DatabaseOption = None,
) -> None:
    """Issue an API token. The secret is printed once and never stored."""
    from governance.services.people import SYSTEM

    with service(database) as governance:
        token = governance.people.create_token(SYSTEM, name, roles, days, owner)
    err.print(
        f"token {token.id} for {escape(name)} ({', '.join(token.roles)}), "
        f"accountable: {escape(token.owner)}; keep it:"
    )
    out.print(token.token)


@token_app.command("list")
def token_list(database: DatabaseOption = None) -> None:
    """Every token (never its secret)."""
    with service(database) as governance:
        table = Table("id", "name", "accountable", "roles", "expires", "revoked")
        for token in governance.people.list_tokens():
            table.add_row(
                token.id,
                token.name,
                token.owner,
                ", ".join(token.roles),
                str(token.expires_at or "never"),
                str(token.revoked_at or ""),
            )
    out.print(table)


@token_app.command("revoke")
def token_revoke(token_id: str, database: DatabaseOption = None) -> None:
    """Revoke a token at once."""
    from governance.services.people import SYSTEM

    with service(database) as governance:
        governance.people.revoke_token(SYSTEM, token_id)
    out.print(f"[green]✓[/] token {escape(token_id)} revoked")


@builder_app.command("add")
def builder_add(
    name: str,
    key: Annotated[Path, typer.Option("--key", help="The builder's Ed25519 public key (PEM).")],
    database: DatabaseOption = None,
) -> None:
    """Register a CI builder's public key. Policies that list the name under
    evidence.trustedBuilders accept its signed evidence without re-computing the checks."""
    from governance.services.people import SYSTEM

    try:
        pem = key.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"--key {key}: cannot read it ({type(exc).__name__}). Fix: give a PEM file")
    with service(database) as governance:
        added = governance.builders.add(SYSTEM, name, pem)
    out.print(f"[green]✓[/] builder {escape(added.name)} registered ({added.key_id})")


@builder_app.command("list")
def builder_list(database: DatabaseOption = None) -> None:
    """Every registered builder, with its key id and whether revoked."""
    with service(database) as governance:
        table = Table("builder", "key", "registered by", "registered", "revoked")
        for builder in governance.builders.list():
            table.add_row(
                builder.name,
                builder.key_id,
                builder.created_by,
                str(builder.created_at),
                str(builder.revoked_at or ""),
            )
    out.print(table)


@builder_app.command("revoke")
def builder_revoke(name: str, database: DatabaseOption = None) -> None:
    """Revoke a builder at once: its provenance is no longer accepted."""
    from governance.services.people import SYSTEM

    with service(database) as governance:
        governance.builders.revoke(SYSTEM, name)
    out.print(f"[green]✓[/] builder {escape(name)} revoked")
