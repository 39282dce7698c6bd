"""``mindmesh-auth``: the administration command line.

Needs the ``cli`` extra (click). The store comes from ``--database-url`` (or
``AUTH_DATABASE_URL`` / ``DATABASE_URL`` / the ``.env`` file) and the rest of
the configuration from :meth:`AuthConfig.from_env`, so ``AUTH_JWT_SECRET`` and
``AUTH_REFRESH_SECRET`` must be set for every command except ``demo``.

Errors end the process with one line on stderr and a non-zero status: ``2``
for usage errors (``Error: ...``), ``1`` for errors from the library
(``error: <code>: <message>``). Password hashes are never printed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, NoReturn, TypeVar

import click

from .core.errors import AuthError, UserNotFound
from .core.models import AuditEvent, AuditEventType, Session, User
from .wiring import redact_url

__all__ = ["cli", "main"]

PROG_NAME = "mindmesh-auth"
_F = TypeVar("_F", bound=Callable[..., Any])

_CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# -- errors -------------------------------------------------------------------


class AuthFailure(click.ClickException):
    """An :class:`AuthError` reported as ``error: <code>: <message>`` with exit status 1."""

    exit_code = 1

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.code}: {_one_line(self.message)}", err=True)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(code: str, message: str) -> NoReturn:
    raise AuthFailure(code, message)


def _not_the_no_client_ip_warning(record: logging.LogRecord) -> bool:
    from .core.deps import NO_IP_WARNING_EVENT

    return getattr(record, "mindmesh_auth_event", None) != NO_IP_WARNING_EVENT


_NO_CLIENT_IP_WARNING = _not_the_no_client_ip_warning


class _State:
    """Per-invocation state: the database URL and the lazily built ``MindmeshAuth``."""

    def __init__(self, database_url: str | None, user_model: str | None = None) -> None:
        self.database_url = database_url
        self.user_model = user_model
        self._auth: Any = None

    @property
    def auth(self) -> Any:  # MindmeshAuth; imported lazily so --help stays fast
        if self._auth is None:
            from .adapters.mail import ConsoleMailer
            from .core.config import AuthConfig
            from .facade import MindmeshAuth

            overrides: dict[str, Any] = {}
            if self.database_url:
                overrides["database_url"] = self.database_url
            config = AuthConfig.from_env(**overrides)
            store: Any = config.database_url
            if self.user_model and store:
                store = _sql_store_with_user_model(store, self.user_model)
            # Admin commands send no mail; anything that would goes to stderr, not an SMTP server.
            self._auth = MindmeshAuth(store=store, mailer=ConsoleMailer(sys.stderr), config=config)
            # Audit events written by admin commands show where they came from.
            self._auth.set_context(user_agent=f"{PROG_NAME} cli")
            # The operator has no client IP by nature: the warning about the shared
            # no-IP bucket (meant for servers without their proxy settings) is not shown.
            logging.getLogger("mindmesh_auth").addFilter(_NO_CLIENT_IP_WARNING)
            self.database_url = config.database_url
        return self._auth

    def close(self) -> None:
        if self._auth is not None:
            auth, self._auth = self._auth, None
            # The filter is the command's, not the process's (an app may run the CLI in-process).
            logging.getLogger("mindmesh_auth").removeFilter(_NO_CLIENT_IP_WARNING)
            auth.close()


def _sql_store_with_user_model(url: str, dotted: str) -> Any:
    """A Peewee store whose users table has the app's model (``package.module:Class``)."""
    import importlib

    from .core.errors import ConfigurationError
    from .wiring import SQL_SCHEMES, builtin_schemes, url_scheme

    scheme = url_scheme(url)
    if scheme not in SQL_SCHEMES:
        sql = ", ".join(f"{s}://" for s in builtin_schemes() if s in SQL_SCHEMES)
        raise ConfigurationError(
            f"--user-model applies to SQL databases only ({sql}), "
            f"not to {scheme}:// URLs: the app's user model is a Peewee model.",
            variable="AUTH_USER_MODEL",
        )
    module_name, _, class_name = dotted.partition(":")
    try:
        model = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        raise ConfigurationError(
            f"Cannot import the user model {dotted!r} (expected package.module:Class).", variable="AUTH_USER_MODEL"
        ) from None
    from .adapters.peewee import PeeweeStore

    return PeeweeStore.from_url(url, user_model=model)


class _Group(click.Group):
    """The top-level group: turns library errors into one-line messages and closes the store."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AuthError as exc:
            raise AuthFailure(exc.code, exc.message) from None
        finally:
            state = ctx.obj
            if isinstance(state, _State):
                try:
                    state.close()
                except AuthError:
                    pass


def _state() -> _State:
    state = click.get_current_context().find_object(_State)
    assert state is not None
    return state


# -- parameter types ----------------------------------------------------------


class IsoDateTime(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """An ISO 8601 date or datetime; a naive value means UTC."""

    name = "ISO-DATETIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            parsed = value
        else:
            try:
                parsed = datetime.fromisoformat(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not an ISO 8601 datetime (e.g. 2024-05-01 or 2024-05-01T12:30:00+02:00).", param, ctx)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc)


class KeyValue(click.ParamType):  # type: ignore[type-arg]
    name = "KEY=VALUE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        key, sep, val = str(value).partition("=")
        if not sep or not key.strip():
            self.fail(f"{value!r} is not KEY=VALUE.", param, ctx)
        return key.strip(), val


_AUDIT_TYPES = click.Choice([t.value for t in AuditEventType], case_sensitive=False)


# -- output helpers -----------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=_json_default, ensure_ascii=False))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    return _one_line(str(value)) or "-"


def _echo_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    click.echo(line(headers))
    for row in cells:
        click.echo(line(row))


def _user_dict(user: User) -> dict[str, Any]:
    data = user.public_dict()  # never includes password_hash
    data.pop("password_hash", None)
    return data


def _session_status(session: Session, now: datetime) -> str:
    if session.revoked_at is not None:
        return "revoked"
    return "active" if session.is_active(now) else "expired"


def _session_dict(session: Session, now: datetime) -> dict[str, Any]:
    return {
        "id": session.id,
        "user_id": session.user_id,
        "status": _session_status(session, now),
        "created_at": session.created_at,
        "last_active_at": session.last_active_at,
        "expires_at": session.expires_at,
        "revoked_at": session.revoked_at,
        "revoke_reason": session.revoke_reason,
        "ip_address": session.ip_address,
        "user_agent": session.user_agent,
    }


def _event_dict(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type.value,
        "occurred_at": event.occurred_at,
        "user_id": event.user_id,
        "email": event.email,
        "ip_address": event.ip_address,
        "user_agent": event.user_agent,
        "session_id": event.session_id,
        "reason": event.reason,
    }


def _redact_url(url: str | None) -> str:
    """The URL without its password or secret query values, for messages (see :func:`redact_url`)."""
    return redact_url(url) if url else "-"


def _resolve_user(auth: Any, id_or_email: str) -> User:
    """A user by id, or by email when the value contains ``@``."""
    if "@" in id_or_email:
        user: User | None = auth.user.get_by_email(id_or_email)
        if user is None:
            raise UserNotFound()
        return user
    found: User = auth.user.get_by_id(id_or_email)
    return found


def _json_option(f: _F) -> _F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(f)


# -- the group ----------------------------------------------------------------


@click.group(cls=_Group, name=PROG_NAME, context_settings=_CONTEXT_SETTINGS)
@click.option(
    "--database-url",
    envvar=["AUTH_DATABASE_URL", "DATABASE_URL"],
    show_envvar=True,
    metavar="URL",
    help="sqlite:///auth.db, postgresql://..., mysql://..., mongodb://..., or the scheme of an installed store plugin "
    "(default: AUTH_DATABASE_URL, DATABASE_URL, or the .env file).",
)
@click.option(
    "--user-model",
    envvar="AUTH_USER_MODEL",
    show_envvar=True,
    metavar="MODULE:CLASS",
    help="The app's Peewee user model (a BaseUserModel subclass) on SQL databases, so --field reaches its columns.",
)
@click.version_option(package_name="mindmesh-auth", prog_name=PROG_NAME)
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, user_model: str | None) -> None:
    """Administer mindmesh-auth users, sessions and the audit log.

    Configuration comes from the environment and ./.env (AUTH_JWT_SECRET and
    AUTH_REFRESH_SECRET are required by every command except demo).
    """
    ctx.obj = _State(database_url, user_model)


@cli.command()
def init() -> None:
    """Create the tables, collections and indexes (idempotent)."""
    state = _state()
    state.auth.create_schema()
    click.echo(f"schema ready on {_redact_url(state.database_url)} (missing tables and indexes created)")


@cli.command()
@click.option("--dry-run", is_flag=True, help="Print the statements that would run and change nothing.")
@_json_option
def migrate(dry_run: bool, as_json: bool) -> None:
    """Upgrade the schema to this release's version (SQL: also add the columns of
    --user-model that the users table lacks; MongoDB: sync the indexes)."""
    state = _state()
    plan = state.auth.migrate(dry_run=dry_run)
    if as_json:
        _echo_json(
            {
                "from_version": plan.from_version,
                "to_version": plan.to_version,
                "applied": plan.applied,
                "statements": list(plan.statements),
            }
        )
        return
    where = _redact_url(state.database_url)
    before = "none" if plan.from_version is None else str(plan.from_version)
    if not plan.statements:
        click.echo(f"schema version {plan.to_version} on {where}: up to date, nothing to do")
        return
    for statement in plan.statements:
        click.echo(f"{statement};")
    if plan.applied:
        click.echo(f"schema version {before} -> {plan.to_version} on {where}: {len(plan.statements)} statement(s) run")
    else:
        click.echo(f"schema version {before} -> {plan.to_version} on {where}: dry run, nothing changed")


@cli.command("purge-expired")
@_json_option
def purge_expired(as_json: bool) -> None:
    """Delete expired sessions, codes, reset tokens and rate-limit counters.

    Old audit events are deleted too when an audit retention is configured.
    """
    state = _state()
    auth = state.auth
    if not as_json:
        click.echo(f"purging expired rows on {_redact_url(state.database_url)} ...", err=True)
    counts: dict[str, int] = auth.purge_expired()
    if as_json:
        _echo_json({**counts, "total": sum(counts.values())})
        return
    summary = ", ".join(f"{table}={count}" for table, count in counts.items())
    click.echo(f"purged {sum(counts.values())} expired rows: {summary}")


@cli.command()
@click.option("--send-test-mail", "send_to", metavar="EMAIL", help="Also send a test mail to this address over SMTP.")
@click.option("--strict", is_flag=True, help="Exit with status 1 on warnings too.")
@_json_option
def doctor(send_to: str | None, strict: bool, as_json: bool) -> None:
    """Check the setup before going live: secrets, database, schema, indexes, clock, SMTP.

    Prints one line per check (ok, warn, FAIL, skip) saying what to fix, never
    a secret. Exits with status 1 when a check fails (or warns, with --strict).
    """
    from .doctor import run_doctor, summary

    state = _state()

    def make_auth(config: Any) -> Any:
        from .adapters.mail import ConsoleMailer
        from .facade import MindmeshAuth

        store: Any = config.database_url
        if state.user_model and store:
            store = _sql_store_with_user_model(store, state.user_model)
        return MindmeshAuth(store=store, mailer=ConsoleMailer(sys.stderr), config=config)

    results = run_doctor(database_url=state.database_url, make_auth=make_auth, send_test_mail=send_to)
    failures, warnings = summary(results)
    if as_json:
        _echo_json({"ok": failures == 0, "failures": failures, "warnings": warnings,
                    "checks": [r.as_dict() for r in results]})
    else:
        labels = {"ok": "ok", "warn": "warn", "fail": "FAIL", "skip": "skip"}
        width = max(len(r.name) for r in results)
        for r in results:
            click.echo(f"{labels[r.status]:<4}  {r.name.ljust(width)}  {_one_line(r.message)}")
        verdict = "ready" if failures == 0 and warnings == 0 else "fix the FAIL lines" if failures else "review the warnings"
        problems = f"{failures} problem{'' if failures == 1 else 's'}"
        click.echo(f"{problems}, {warnings} warning{'' if warnings == 1 else 's'}: {verdict}")
    if failures or (strict and warnings):
        click.get_current_context().exit(1)


@cli.command()
@click.option("--database-url", "demo_url", metavar="URL", help="Default: a fresh SQLite file in a temporary folder.")
@click.pass_context
def demo(ctx: click.Context, demo_url: str | None) -> None:
    """Run the whole flow (register, login, code, tokens, refresh, logout).

    Needs no configuration: it uses throw-away secrets and prints each mail.
    The environment's database URL is ignored; only an explicit --database-url
    (here or before the command name) is used.
    """
    from .demo import run_demo

    url = demo_url
    parent = ctx.parent
    if url is None and parent is not None:
        if parent.get_parameter_source("database_url") == click.core.ParameterSource.COMMANDLINE:
            url = parent.params.get("database_url")
    code = run_demo(url, sys.stdout)
    if code:
        ctx.exit(code)


# -- users --------------------------------------------------------------------


@cli.group()
def users() -> None:
    """Create, inspect, block, verify and delete users."""


@users.command("create")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.option("--verified", is_flag=True, help="Mark the email address as verified.")
@click.option(
    "--field",
    "fields",
    type=KeyValue(),
    multiple=True,
    help="A profile field (repeatable). The store's user model must have the field.",
)
def users_create(email: str, password_stdin: bool, verified: bool, fields: tuple[tuple[str, str], ...]) -> None:
    """Create a user with EMAIL (as an administrator) and print the new id.

    The password is prompted for (hidden, twice) or read with --password-stdin;
    it is never a command-line argument.
    """
    if password_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
        if not password:
            raise click.UsageError("--password-stdin: no password on stdin.")
    elif not sys.stdin.isatty():
        raise click.UsageError("stdin is not a terminal, so the password cannot be prompted for: use --password-stdin.")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    profile: dict[str, Any] = {}
    for key, value in fields:
        if key in profile:
            raise click.BadParameter(f"field {key!r} given twice.", param_hint="'--field'")
        profile[key] = value
    auth = _state().auth
    user: User = auth.user.create(email, password, email_verified=verified, **profile)
    click.echo(user.id)


@users.command("show")
@click.argument("id_or_email")
@_json_option
def users_show(id_or_email: str, as_json: bool) -> None:
    """Show one user (by id, or by email when the value contains @)."""
    user = _resolve_user(_state().auth, id_or_email)
    data = _user_dict(user)
    if as_json:
        _echo_json(data)
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        if key in ("created_at", "updated_at"):
            value = getattr(user, key)
        click.echo(f"{key.ljust(width)}  {_fmt(value)}")


@users.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="At most this many users.")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True, help="Skip this many users.")
@_json_option
def users_list(limit: int, offset: int, as_json: bool) -> None:
    """List users."""
    found: list[User] = _state().auth.user.list(limit=limit, offset=offset)
    if as_json:
        _echo_json([_user_dict(u) for u in found])
        return
    if not found:
        click.echo("no users")
        return
    _echo_table(
        ["ID", "EMAIL", "VERIFIED", "BLOCKED", "CREATED"],
        [[u.id, u.email, u.email_verified, u.blocked, u.created_at] for u in found],
    )


def _user_action(name: str, method: str, done: str, doc: str) -> None:
    @users.command(name, help=doc)
    @click.argument("id_or_email")
    def command(id_or_email: str) -> None:
        auth = _state().auth
        user = _resolve_user(auth, id_or_email)
        getattr(auth.user, method)(user.id)
        click.echo(f"{done} user {user.id} <{user.email}>")


_user_action(
    "block",
    "block",
    "blocked",
    "Block a user and revoke all their sessions (idempotent). ID_OR_EMAIL is an id, or an email when it contains @.",
)
_user_action(
    "unblock",
    "unblock",
    "unblocked",
    "Allow a blocked user to log in again; old sessions stay revoked. ID_OR_EMAIL is an id or an email.",
)
_user_action(
    "verify-email",
    "mark_email_verified",
    "verified the email of",
    "Mark a user's email address as verified. ID_OR_EMAIL is an id or an email.",
)
_user_action(
    "delete",
    "delete",
    "deleted",
    "Delete a user for good: every session is revoked, pending codes and reset tokens go, and the address "
    "may register again. No confirmation is asked. ID_OR_EMAIL is an id or an email.",
)


# -- sessions -----------------------------------------------------------------


@cli.group()
def sessions() -> None:
    """List and revoke login sessions."""


@sessions.command("list")
@click.argument("id_or_email")
@click.option("--all", "include_all", is_flag=True, help="Include revoked and expired sessions.")
@_json_option
def sessions_list(id_or_email: str, include_all: bool, as_json: bool) -> None:
    """List a user's sessions (active ones unless --all)."""
    auth = _state().auth
    user = _resolve_user(auth, id_or_email)
    found: list[Session] = auth.sessions.list(user.id, include_inactive=include_all)
    now = datetime.now(timezone.utc)
    if as_json:
        _echo_json([_session_dict(s, now) for s in found])
        return
    if not found:
        click.echo(f"no {'' if include_all else 'active '}sessions for {user.email}")
        return
    _echo_table(
        ["ID", "STATUS", "CREATED", "LAST ACTIVE", "EXPIRES", "IP", "USER AGENT"],
        [
            [s.id, _session_status(s, now), s.created_at, s.last_active_at, s.expires_at, s.ip_address, s.user_agent]
            for s in found
        ],
    )


@sessions.command("revoke")
@click.argument("session_id")
def sessions_revoke(session_id: str) -> None:
    """Revoke one session (its refresh and access tokens stop working)."""
    revoked: bool = _state().auth.sessions.revoke(session_id)
    click.echo(f"revoked session {session_id}" if revoked else f"session {session_id} was not active; nothing to do")


@sessions.command("revoke-all")
@click.argument("id_or_email")
def sessions_revoke_all(id_or_email: str) -> None:
    """Revoke every live session of a user."""
    auth = _state().auth
    user = _resolve_user(auth, id_or_email)
    count: int = auth.sessions.revoke_all(user.id)
    click.echo(f"revoked {count} session{'' if count == 1 else 's'} of {user.email}")


# -- audit --------------------------------------------------------------------


@cli.command()
@click.option("--user", "user", metavar="ID_OR_EMAIL", help="Only this user's events (an email matches the event's email).")
@click.option("--type", "types", type=_AUDIT_TYPES, multiple=True, help="Only these event types (repeatable).")
@click.option("--since", type=IsoDateTime(), help="From this time on (ISO 8601; naive means UTC).")
@click.option("--until", type=IsoDateTime(), help="Before this time (ISO 8601; naive means UTC).")
@click.option("--limit", type=click.IntRange(1, 10000), default=100, show_default=True, help="At most this many events.")
@_json_option
def audit(
    user: str | None,
    types: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    limit: int,
    as_json: bool,
) -> None:
    """Show audit events, oldest first."""
    if since is not None and until is not None and since > until:
        raise click.BadParameter("--since is after --until.", param_hint="'--since'")
    filters: dict[str, Any] = {"since": since, "until": until, "limit": limit}
    if types:
        filters["types"] = [AuditEventType(t.upper()) for t in types]
    if user is not None:
        if "@" in user:
            filters["email"] = user
        else:
            filters["user_id"] = user
    events: list[AuditEvent] = _state().auth.audit.query(**filters)
    if as_json:
        _echo_json([_event_dict(e) for e in events])
        return
    if not events:
        click.echo("no audit events")
        return
    _echo_table(
        ["ID", "TIME", "TYPE", "USER", "EMAIL", "IP", "SESSION", "REASON"],
        [[e.id, e.occurred_at, e.type.value, e.user_id, e.email, e.ip_address, e.session_id, e.reason] for e in events],
    )


# -- entry point --------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (errors are one line on stderr)."""
    try:
        rv = cli.main(args=list(argv) if argv is not None else None, prog_name=PROG_NAME, standalone_mode=False)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"Error: {_one_line(exc.format_message())}{hint}", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except AuthError as exc:  # raised outside a command (should not happen)
        click.echo(f"error: {exc.code}: {_one_line(exc.message)}", err=True)
        return 1
    except Exception as exc:
        if os.environ.get("MINDMESH_AUTH_DEBUG"):
            raise
        first = _one_line(str(exc).splitlines()[0]) if str(exc) else ""
        click.echo(f"error: unexpected: {type(exc).__name__}{': ' + first if first else ''}", err=True)
        return 1
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
