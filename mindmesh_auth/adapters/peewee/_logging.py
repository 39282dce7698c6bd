"""Peewee's DEBUG query log without the bound parameters.

At DEBUG, Peewee logs every statement as ``(sql, params)`` on the ``peewee`` logger. The
parameters of this package's statements are bcrypt password hashes, keyed hashes of refresh
tokens, reset tokens and codes, and email addresses: an app that turns the root logger to
DEBUG would write them to its logs. Importing the Peewee adapter installs a filter on that
logger which keeps the SQL text and replaces the parameters by their count.

``MINDMESH_LOG_SQL_PARAMS=1`` in the environment (read at each record) lets the parameters
through: for debugging against a throwaway database only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sized

OPT_OUT_VARIABLE = "MINDMESH_LOG_SQL_PARAMS"
_TRUE = frozenset({"1", "true", "yes", "on"})


def _parameters_allowed() -> bool:
    return os.environ.get(OPT_OUT_VARIABLE, "").strip().lower() in _TRUE


class RedactSqlParameters(logging.Filter):
    """Replace the parameters of Peewee's ``(sql, params)`` records by ``<N params redacted>``."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        if not (isinstance(msg, tuple) and len(msg) == 2 and isinstance(msg[0], str)):
            return True
        params = msg[1]
        count = len(params) if isinstance(params, Sized) else 1
        if params is None or count == 0 or _parameters_allowed():
            return True
        # Same shape as Peewee's own record, so handlers that read msg[0] keep working.
        record.msg = (msg[0], f"<{count} params redacted>")
        return True


_FILTER = RedactSqlParameters()


def install() -> None:
    """Put the filter on the ``peewee`` logger (once; importing the adapter does it)."""
    logger = logging.getLogger("peewee")
    if not any(isinstance(f, RedactSqlParameters) for f in logger.filters):
        logger.addFilter(_FILTER)


install()
