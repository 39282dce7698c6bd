"""Account lifecycle hooks: the app's own code at the points of an account's life.

``MindmeshAuth(hooks=Hooks(...))``. Every hook is optional and synchronous (under
:class:`~mindmesh_auth.aio.AsyncMindmeshAuth` it runs on the worker thread of the
call).

* ``before_register(email, profile)`` runs before anything is stored, with the
  canonical address and the profile fields given. To refuse the registration it
  raises a :class:`~mindmesh_auth.core.errors.ValidationError` (the caller gets
  it; ``REGISTRATION_FAILED`` is audited with reason ``refused_by_app``); any
  other exception propagates as it is and nothing is stored either.
* ``after_*`` hooks run once the operation's unit of work has committed, never
  inside it (no storage lock is held, and a hook that writes to the app's own
  database is not rolled back with ours). They get the user as it is after the
  operation (``after_delete``: as it was). An exception from an ``after_*`` hook
  cannot undo what committed: it is logged once on the ``mindmesh_auth`` logger
  (event ``hook_failed``, the hook's name and the exception's class, no message)
  and the operation still returns its result.

Hooks never receive a password, code or token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .models import User

__all__ = ["HOOK_FAILED_EVENT", "Hooks"]

log = logging.getLogger("mindmesh_auth")

HOOK_FAILED_EVENT = "hook_failed"


def _callable_or_none(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        from .errors import ConfigurationError

        raise ConfigurationError(f"hooks.{attribute.name} must be callable.", variable=f"hooks.{attribute.name}")


@attrs.frozen(kw_only=True)
class Hooks:
    """The app's callbacks (all optional; see the module docstring)."""

    before_register: Callable[[str, Mapping[str, Any]], None] | None = attrs.field(default=None, validator=_callable_or_none)
    after_register: Callable[[User], None] | None = attrs.field(default=None, validator=_callable_or_none)
    after_login: Callable[[User, str], None] | None = attrs.field(default=None, validator=_callable_or_none)
    """``(user, session_id)`` once ``verify_otp`` opened the session."""
    after_password_change: Callable[[User], None] | None = attrs.field(default=None, validator=_callable_or_none)
    """After ``password.change`` and a completed ``password.reset``."""
    after_email_change: Callable[[User, str], None] | None = attrs.field(default=None, validator=_callable_or_none)
    """``(user, old_email)``."""
    after_delete: Callable[[User], None] | None = attrs.field(default=None, validator=_callable_or_none)
    """The deleted user (by the owner or an administrator): the place to delete the app's own rows."""

    def after(self, name: str, *args: Any) -> None:
        """Run the ``after_<name>`` hook, if any; log (never raise) what it raises."""
        hook: Callable[..., None] | None = getattr(self, f"after_{name}")
        if hook is None:
            return
        try:
            hook(*args)
        except Exception as exc:  # noqa: BLE001 - the operation committed: nothing to undo, report it
            log.error(
                "The after_%s hook raised %s; the operation had already completed",
                name,
                type(exc).__name__,
                extra={"mindmesh_auth_event": HOOK_FAILED_EVENT, "mindmesh_hook": f"after_{name}"},
            )
