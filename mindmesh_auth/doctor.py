"""``mindmesh-auth doctor``: is this setup ready to go live?

Each check is a plain function returning :class:`CheckResult` records (a
name, a status and a message saying what to fix). Messages name variables,
hosts and tables, never a secret's value. :func:`run_doctor` runs them all in
order; the CLI prints them (``mindmesh_auth/cli.py``).

Statuses: ``ok``; ``warn`` (works, but should be fixed before going live);
``fail`` (broken: the command exits with status 1); ``skip`` (could not be
checked because an earlier check failed, or does not apply).
"""

from __future__ import annotations

import ipaddress
import secrets
import smtplib
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import attrs

from .core import config as _config_module
from .core.config import MIN_SECRET_LENGTH, AuthConfig
from .core.errors import AuthError, ConfigurationError, SchemaMismatch, StorageError
from .wiring import redact_url

__all__ = [
    "CLOCK_SKEW_WARNING",
    "EARLIEST_PLAUSIBLE_TIME",
    "CheckResult",
    "Status",
    "check_clock",
    "check_config_advice",
    "check_database",
    "check_indexes",
    "check_mysql_email_collation",
    "check_schema_version",
    "check_smtp",
    "load_config",
    "run_doctor",
    "summary",
]

Status = Literal["ok", "warn", "fail", "skip"]

#: Above this difference between this machine's clock and the database's, warn.
CLOCK_SKEW_WARNING = timedelta(seconds=30)
#: A local clock before this (the year this version was built) is certainly wrong.
EARLIEST_PLAUSIBLE_TIME = datetime(2026, 1, 1, tzinfo=timezone.utc)
#: The SMTP checks never wait longer than this per network step, whatever SMTP_TIMEOUT says.
SMTP_CHECK_TIMEOUT = 10.0
#: Fewer distinct characters than this in a secret of the minimum length is not random.
_MIN_DISTINCT_CHARACTERS: int = getattr(_config_module, "MIN_DISTINCT_CHARACTERS", 10)  # the config's own rule
_GENERATE = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
# from_env's default for env_file (./.env when the process environment is read).
_DEFAULT_ENV_FILE: Any = getattr(_config_module, "DOTENV", ".env")


@dataclass(frozen=True)
class CheckResult:
    """One finding: ``name`` (e.g. ``smtp.tls``), ``status`` and what to fix (never a secret)."""

    name: str
    status: Status
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "message": self.message}


def _ok(name: str, message: str) -> CheckResult:
    return CheckResult(name, "ok", message)


def _warn(name: str, message: str) -> CheckResult:
    return CheckResult(name, "warn", message)


def _fail(name: str, message: str) -> CheckResult:
    return CheckResult(name, "fail", message)


def _skip(name: str, message: str) -> CheckResult:
    return CheckResult(name, "skip", message)


# -- configuration ----------------------------------------------------------------------


def load_config(
    environ: Mapping[str, str] | None = None, *, env_file: Any = _DEFAULT_ENV_FILE, **overrides: Any
) -> tuple[AuthConfig | None, list[CheckResult]]:
    """The configuration from the environment (and ``.env``), or ``None`` and the failure naming the variable."""
    try:
        config = AuthConfig.from_env(environ, env_file=env_file, **overrides)
    except ConfigurationError as exc:
        variable = f"{exc.variable}: " if exc.variable and exc.variable not in exc.message else ""
        return None, [_fail("config", f"{variable}{exc.message}")]
    return config, [_ok("config", "the configuration loads (secrets present, long enough and distinct)")]


def _looks_random(secret: str) -> bool:
    return len(set(secret)) >= _MIN_DISTINCT_CHARACTERS


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_config_advice(config: AuthConfig) -> list[CheckResult]:
    """Advice on a configuration that loads: weak secrets, no pepper, cheap bcrypt, clear-text SMTP."""
    results: list[CheckResult] = []
    named = [("AUTH_JWT_SECRET", config.jwt_secret), ("AUTH_REFRESH_SECRET", config.refresh_secret)]
    named += [("AUTH_JWT_PREVIOUS_SECRETS", old) for old in config.previous_jwt_secrets]
    named += [("AUTH_REFRESH_PREVIOUS_SECRETS", old) for old in getattr(config, "previous_refresh_secrets", ())]
    if config.password_pepper:
        named.append(("AUTH_PASSWORD_PEPPER", config.password_pepper))
    weak = sorted({name for name, value in named if not _looks_random(value)})
    if weak:
        results.append(
            _fail("config.secrets", f"{', '.join(weak)} looks weak (too few distinct characters); {_GENERATE}")
        )
    seen: dict[str, str] = {}
    shared: list[str] = []
    for name, value in named:
        if value in seen and seen[value] != name:
            shared.append(f"{seen[value]} and {name}")
        seen.setdefault(value, name)
    if shared:
        results.append(_fail("config.secrets", f"{'; '.join(shared)} have the same value: each needs its own secret"))
    if not weak and not shared:
        results.append(_ok("config.secrets", "secrets look random and are distinct"))

    weaknesses = getattr(config, "weaknesses", None)
    if callable(weaknesses):
        for advice in weaknesses():
            if not config.password_pepper and "AUTH_PASSWORD_PEPPER" in str(advice):
                continue  # said below, louder
            results.append(_warn("config.advice", str(advice)))

    if not config.password_pepper:
        results.append(
            _warn(
                "config.pepper",
                "AUTH_PASSWORD_PEPPER is NOT SET. Strongly recommended before going live: with a pepper, a stolen "
                f"database alone cannot be used to guess passwords. {_GENERATE}, keep it outside the database and set "
                "it before the first user registers (changing it, from empty too, invalidates every password)",
            )
        )
    elif len(config.password_pepper.encode("utf-8")) < MIN_SECRET_LENGTH:
        results.append(
            _warn("config.pepper", f"AUTH_PASSWORD_PEPPER is shorter than {MIN_SECRET_LENGTH} characters; {_GENERATE}")
        )
    else:
        results.append(_ok("config.pepper", "a password pepper is set"))

    if config.bcrypt_rounds < 12:
        results.append(
            _warn("config.bcrypt", f"AUTH_BCRYPT_ROUNDS is {config.bcrypt_rounds}: use 12 or more in production")
        )
    else:
        results.append(_ok("config.bcrypt", f"bcrypt cost {config.bcrypt_rounds}"))

    host = config.smtp_host
    if host and config.smtp_security == "none" and not _is_loopback(host):
        what = "codes, reset links and the SMTP login" if config.smtp_user else "codes and reset links"
        results.append(
            _warn(
                "config.smtp",
                f"SMTP_SECURITY=none with the non-loopback host {host}: {what} travel in clear text; "
                "use SMTP_SECURITY=starttls or tls",
            )
        )
    return results


# -- database ---------------------------------------------------------------------------


def check_database(auth: Any, database_url: str | None) -> CheckResult:
    """The store answers a read of the users table."""
    where = redact_url(database_url) if database_url else "the store"
    try:
        auth.user.list(limit=1)
    except SchemaMismatch as exc:
        return _fail("database", f"{where} is reachable but its tables are missing or outdated ({exc.message}): "
                     "run 'mindmesh-auth init' on a new database, 'mindmesh-auth migrate' on an older one")
    except AuthError as exc:
        return _fail("database", f"cannot use {where}: {exc.code}: {exc.message} (is the server running and the URL right?)")
    if database_url and database_url.split(":", 1)[0].lower() == "memory":
        return _warn("database", "memory:// keeps nothing across restarts: use SQL or MongoDB in production")
    return _ok("database", f"{where} is reachable")


def check_schema_version(auth: Any) -> CheckResult:
    """The schema version recorded in the database against the one this version expects."""
    schema_status = getattr(auth, "schema_status", None)
    if not callable(schema_status):
        return _skip("database.schema", "this version records no schema version")
    try:
        status = schema_status()
    except AuthError as exc:
        return _fail("database.schema", f"cannot read the schema version: {exc.code}: {exc.message}")
    pending = tuple(getattr(status, "pending", ()) or ())
    current, expected = getattr(status, "current", None), getattr(status, "expected", None)
    if current is None:
        return _fail("database.schema", f"no schema version recorded (expected {expected}): run 'mindmesh-auth migrate'")
    if pending or current != expected:
        steps = f"; pending: {', '.join(pending)}" if pending else ""
        return _fail(
            "database.schema", f"schema version {current}, this version expects {expected}{steps}: run 'mindmesh-auth migrate'"
        )
    return _ok("database.schema", f"schema version {current} (current)")


def _expected_sql_indexes(model: Any) -> list[tuple[tuple[str, ...], bool]]:
    """(columns, unique) of every index the Peewee model declares, primary key excepted."""
    meta = model._meta
    found: list[tuple[tuple[str, ...], bool]] = []
    for field in meta.sorted_fields:
        if field.primary_key:
            continue
        if field.unique or field.index:
            found.append(((field.column_name,), bool(field.unique)))
    for spec in meta.indexes:
        if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], tuple):
            columns = tuple(meta.fields[name].column_name if name in meta.fields else name for name in spec[0])
            found.append((columns, bool(spec[1])))
    return found


def _sql_missing_indexes(store: Any) -> list[str]:
    database = store.database
    missing: list[str] = []
    for model in store.models.all():
        table = model._meta.table_name
        present = [(tuple(ix.columns), bool(ix.unique)) for ix in database.get_indexes(table)]
        for columns, unique in _expected_sql_indexes(model):
            if not any(cols == columns and (is_unique or not unique) for cols, is_unique in present):
                missing.append(f"{table}({', '.join(columns)}){' unique' if unique else ''}")
    return missing


# The unique indexes the MongoDB repositories rely on (see MongoStore.ensure_indexes).
_MONGO_UNIQUE_INDEXES = {
    "users": (("email",),),
    "sessions": (("refresh_hash",),),
    "otps": (("email", "purpose"), ("id",)),
}


def _mongo_missing_indexes(store: Any) -> list[str]:
    missing: list[str] = []
    for logical, wanted in _MONGO_UNIQUE_INDEXES.items():
        name = store.collection_names[logical]
        info = store.database[name].index_information()
        present = {tuple(k for k, _ in spec["key"]) for spec in info.values() if spec.get("unique")}
        missing += [f"{name}({', '.join(cols)}) unique" for cols in wanted if cols not in present]
    return missing


def check_indexes(auth: Any) -> CheckResult:
    """Every index the store's repositories rely on exists (unique ones above all)."""
    store = auth.store
    try:
        if hasattr(store, "models") and hasattr(store, "database"):
            missing = _sql_missing_indexes(store)
        elif hasattr(store, "collection_names") and hasattr(store, "database"):
            missing = _mongo_missing_indexes(store)
        else:
            return _skip("database.indexes", f"{type(store).__name__} has no indexes to check")
    except AuthError as exc:
        return _fail("database.indexes", f"cannot read the indexes: {exc.code}: {exc.message}")
    except Exception as exc:  # a driver error reading the catalogue: name its class only (it may quote parameters)
        return _fail("database.indexes", f"cannot read the indexes ({type(exc).__name__})")
    if missing:
        return _fail("database.indexes", f"missing indexes: {'; '.join(missing)}: run 'mindmesh-auth init'")
    return _ok("database.indexes", "every index is present")


def _sql_database(store: Any) -> Any:
    """The Peewee database of a SQL store (through a ``DatabaseProxy`` too), else ``None``."""
    database = getattr(store, "database", None)
    if database is None or not hasattr(store, "models"):
        return None
    try:
        from .adapters.peewee.models import resolve_database
    except ImportError:  # pragma: no cover - no SQL store without peewee
        return None
    return resolve_database(database)


def check_mysql_email_collation(auth: Any) -> CheckResult | None:
    """On MySQL/MariaDB, the users' email column compares in binary (``None`` on other stores)."""
    store = auth.store
    database = _sql_database(store)
    if database is None:
        return None
    import peewee  # present: _sql_database found a Peewee database

    if not isinstance(database, peewee.MySQLDatabase):
        return None
    table = store.models.User._meta.table_name
    try:
        row = database.execute_sql(  # type: ignore[no-untyped-call]
            "SELECT COLLATION_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND COLUMN_NAME = 'email'",
            (table,),
        ).fetchone()
    except Exception as exc:
        return _fail("database.collation", f"cannot read the collation of {table}.email ({type(exc).__name__})")
    collation = row[0] if row else None
    if not collation:
        return _fail("database.collation", f"{table}.email not found: run 'mindmesh-auth init'")
    if not str(collation).lower().endswith("_bin"):
        return _fail(
            "database.collation",
            f"{table}.email compares with {collation}, not in binary: addresses differing in case or accents "
            f"would collide. ALTER the column to a binary collation (e.g. utf8mb4_bin)",
        )
    return _ok("database.collation", f"{table}.email compares in binary ({collation})")


def _database_time(auth: Any) -> datetime | None:
    """The database server's clock (UTC), or ``None`` when it is this machine's (SQLite, memory)."""
    store = auth.store
    database = _sql_database(store)
    if database is not None:
        import peewee

        if isinstance(database, peewee.MySQLDatabase):
            value = database.execute_sql("SELECT UTC_TIMESTAMP(3)").fetchone()[0]  # type: ignore[no-untyped-call]
        elif isinstance(database, peewee.PostgresqlDatabase):
            value = database.execute_sql("SELECT now()").fetchone()[0]  # type: ignore[no-untyped-call]
        else:
            return None  # SQLite: the same machine
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)  # type: ignore[no-any-return]
    if hasattr(store, "collection_names") and getattr(store, "database", None) is not None:
        hello = store.database.client.admin.command("hello")
        value = hello.get("localTime")
        if not isinstance(value, datetime):
            return None
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    return None


def check_clock(
    auth: Any | None,
    *,
    now: Callable[[], datetime] | None = None,
    database_time: Callable[[], datetime | None] | None = None,
) -> CheckResult:
    """This machine's UTC clock is plausible and agrees with the database server's."""
    local = (now or (lambda: datetime.now(timezone.utc)))()
    if local < EARLIEST_PLAUSIBLE_TIME:
        return _fail(
            "clock",
            f"this machine's clock says {local:%Y-%m-%d %H:%M:%SZ}, before this version was built: "
            "tokens and codes would expire wrongly. Fix the system time (NTP)",
        )
    if database_time is None and auth is None:
        return _ok("clock", "this machine's clock is plausible (no database to compare with)")
    try:
        remote = database_time() if database_time is not None else _database_time(auth)
    except Exception as exc:
        return _warn("clock", f"cannot read the database server's clock ({type(exc).__name__})")
    if remote is None:
        return _ok("clock", "this machine's clock is plausible (the database uses the same clock)")
    skew = abs(local - remote)
    if skew > CLOCK_SKEW_WARNING:
        return _warn(
            "clock",
            f"this machine's clock and the database server's differ by {skew.total_seconds():.0f} s "
            f"(more than {CLOCK_SKEW_WARNING.total_seconds():.0f} s): sync both with NTP",
        )
    return _ok("clock", f"this machine's clock agrees with the database server's ({skew.total_seconds():.1f} s apart)")


# -- SMTP -------------------------------------------------------------------------------


def _smtp_error(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the server answered {exc.smtp_code}"  # its text may quote what it was sent
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not verified ({exc.verify_message})"
    if isinstance(exc, socket.timeout | TimeoutError) or isinstance(exc.__context__, socket.timeout | TimeoutError):
        return "timed out"  # smtplib wraps a read timeout in SMTPServerDisconnected
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "the server closed the connection"
    return type(exc).__name__


def check_smtp(
    config: AuthConfig,
    *,
    send_test_mail: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float | None = None,
) -> list[CheckResult]:
    """Connect, secure the connection with a verified certificate, log in, and optionally send a test mail."""
    if not config.smtp_host:
        return [
            _warn(
                "smtp",
                "SMTP_HOST is not set: codes and reset links can only be sent by a mailer the app passes itself",
            )
        ]
    results = _smtp_session(config, config.smtp_host, ssl_context, timeout)
    if send_test_mail:
        if any(r.status == "fail" for r in results):
            results.append(_skip("smtp.test_mail", "not sent: fix the SMTP problems above first"))
        else:
            results.append(_send_test_mail(config, send_test_mail, ssl_context))
    return results


def _smtp_session(
    config: AuthConfig, host: str, ssl_context: ssl.SSLContext | None, timeout: float | None
) -> list[CheckResult]:
    port = config.smtp_port
    where = f"{host}:{port}"
    wait = min(timeout or config.smtp_timeout, SMTP_CHECK_TIMEOUT)
    context = ssl_context or ssl.create_default_context()
    results: list[CheckResult] = []
    client: smtplib.SMTP | None = None
    try:
        try:
            if config.smtp_security == "tls":
                client = smtplib.SMTP_SSL(host, port, timeout=wait, context=context)
            else:
                client = smtplib.SMTP(host, port, timeout=wait)
            client.ehlo()
        except ssl.SSLError as exc:
            return [_ok("smtp.connect", f"{where} answers"), _fail("smtp.tls", f"TLS with {where} failed: "
                    f"{_smtp_error(exc)}; the server needs a certificate this machine trusts for {host}")]
        except (OSError, smtplib.SMTPException) as exc:
            return [_fail("smtp.connect", f"cannot connect to {where} within {wait:g} s: {_smtp_error(exc)} "
                          "(check SMTP_HOST, SMTP_PORT and the firewall)")]
        results.append(_ok("smtp.connect", f"{where} answers"))

        if config.smtp_security == "tls":
            results.append(_ok("smtp.tls", "implicit TLS with a verified certificate"))
        elif config.smtp_security == "starttls":
            if not client.has_extn("starttls"):
                results.append(_fail("smtp.tls", f"{where} does not offer STARTTLS: use SMTP_SECURITY=tls (port 465) "
                                     "or a server that does"))
                return results
            try:
                client.starttls(context=context)
                client.ehlo()
            except (OSError, smtplib.SMTPException) as exc:
                results.append(_fail("smtp.tls", f"STARTTLS with {where} failed: {_smtp_error(exc)}; the server needs "
                                     f"a certificate this machine trusts for {host}"))
                return results
            results.append(_ok("smtp.tls", "STARTTLS with a verified certificate"))
        elif _is_loopback(host):
            results.append(_ok("smtp.tls", "no TLS (SMTP_SECURITY=none) on a loopback host"))
        else:
            results.append(_warn("smtp.tls", f"no TLS (SMTP_SECURITY=none) to {host}: use starttls or tls"))

        if config.smtp_user:
            try:
                client.login(config.smtp_user, config.smtp_password or "")
            except smtplib.SMTPAuthenticationError as exc:
                results.append(_fail("smtp.login", f"{where} refused the login ({_smtp_error(exc)}): check SMTP_USER "
                                     "and SMTP_PASS"))
                return results
            except (OSError, smtplib.SMTPException) as exc:
                results.append(_fail("smtp.login", f"login on {where} failed: {_smtp_error(exc)}"))
                return results
            results.append(_ok("smtp.login", "SMTP_USER logs in"))
        else:
            results.append(_skip("smtp.login", "no SMTP_USER: no login"))
    finally:
        if client is not None:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()
    return results


def _send_test_mail(config: AuthConfig, to: str, ssl_context: ssl.SSLContext | None) -> CheckResult:
    from .adapters.smtp import SmtpMailer
    from .core.ports import OutgoingMessage

    if "@" not in to or any(ord(ch) < 0x20 or ch.isspace() for ch in to):
        return _fail("smtp.test_mail", f"{to!r} is not an address a test mail can be sent to")
    mailer = SmtpMailer(
        config.smtp_host or "",
        config.smtp_port,
        sender=config.smtp_from,
        user=config.smtp_user,
        password=config.smtp_password,
        security=config.smtp_security,
        timeout=min(config.smtp_timeout, SMTP_CHECK_TIMEOUT),
        ssl_context=ssl_context,
    )
    message = OutgoingMessage(
        to=to,
        subject=f"{config.app_name}: mindmesh-auth test mail",
        text="This test mail was sent by 'mindmesh-auth doctor --send-test-mail'. Nothing to do.\n",
        kind="test",
    )
    try:
        mailer.send(message)
    except ValueError:
        return _fail("smtp.test_mail", f"{to!r} is not an address a test mail can be sent to")
    except AuthError as exc:
        return _fail("smtp.test_mail", f"the test mail to {to} was not accepted: {exc.code}: {exc.message}")
    return _ok("smtp.test_mail", f"a test mail to {to} was accepted by {config.smtp_host}: check that it arrived")


# -- all together -----------------------------------------------------------------------


def _probe_config(environ: Mapping[str, str] | None, env_file: Any, overrides: dict[str, Any]) -> AuthConfig | None:
    """The configuration with throw-away secrets, so the database and SMTP checks still run after a secret failed."""
    throwaway: dict[str, Any] = {"jwt_secret": secrets.token_urlsafe(48), "refresh_secret": secrets.token_urlsafe(48)}
    fields = attrs.fields_dict(AuthConfig)
    for name in ("previous_jwt_secrets", "previous_refresh_secrets"):
        if name in fields:
            throwaway[name] = ()
    throwaway["password_pepper"] = ""
    try:
        return AuthConfig.from_env(environ, env_file=env_file, **{**overrides, **throwaway})
    except ConfigurationError:
        return None


def run_doctor(
    *,
    environ: Mapping[str, str] | None = None,
    env_file: Any = _DEFAULT_ENV_FILE,
    database_url: str | None = None,
    make_auth: Callable[[AuthConfig], Any] | None = None,
    send_test_mail: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    now: Callable[[], datetime] | None = None,
) -> list[CheckResult]:
    """Every check, in order: configuration, database (reachable, schema, indexes, collation), clock, SMTP.

    ``make_auth(config)`` builds the facade on the configured store (default:
    ``MindmeshAuth(store=config.database_url)`` with a console mailer).
    """
    overrides: dict[str, Any] = {"database_url": database_url} if database_url else {}
    config, results = load_config(environ, env_file=env_file, **overrides)
    if config is not None:
        results += check_config_advice(config)
        checked = config
    else:
        probe = _probe_config(environ, env_file, overrides)
        if probe is None:
            results.append(_skip("database", "not checked: fix the configuration first"))
            results.append(check_clock(None, now=now))
            results.append(_skip("smtp", "not checked: fix the configuration first"))
            return results
        checked = probe

    results += _database_checks(checked, make_auth, now)
    results += check_smtp(checked, send_test_mail=send_test_mail, ssl_context=ssl_context)
    return results


def _default_auth(config: AuthConfig) -> Any:
    import sys

    from .adapters.mail import ConsoleMailer
    from .facade import MindmeshAuth

    return MindmeshAuth(store=config.database_url, mailer=ConsoleMailer(sys.stderr), config=config)


def _database_checks(
    config: AuthConfig, make_auth: Callable[[AuthConfig], Any] | None, now: Callable[[], datetime] | None
) -> list[CheckResult]:
    url = config.database_url
    if not url:
        return [
            _fail("database", "no database URL: set AUTH_DATABASE_URL (or DATABASE_URL, or pass --database-url)"),
            check_clock(None, now=now),
        ]
    try:
        auth = (make_auth or _default_auth)(config)
    except AuthError as exc:
        return [_fail("database", f"cannot open {redact_url(url)}: {exc.code}: {exc.message}"), check_clock(None, now=now)]
    try:
        reachable = check_database(auth, url)
        results = [reachable]
        if reachable.status == "fail":
            results.append(_skip("database.schema", "not checked: the database is not usable"))
            results.append(check_clock(None, now=now))
            return results
        results.append(check_schema_version(auth))
        results.append(check_indexes(auth))
        collation = check_mysql_email_collation(auth)
        if collation is not None:
            results.append(collation)
        results.append(check_clock(auth, now=now))
        return results
    finally:
        try:
            auth.close()
        except (AuthError, StorageError):
            pass


def summary(results: Iterable[CheckResult]) -> tuple[int, int]:
    """(failures, warnings)."""
    found = list(results)
    return sum(r.status == "fail" for r in found), sum(r.status == "warn" for r in found)
