"""Schema versions and migrations: what a store reports and what ``migrate`` did.

The stores record the version of their own layout in the database
(:data:`SCHEMA_VERSION` is the one this package writes). ``schema_status()``
says how far a database is from it; ``migrate()`` brings it there and returns
a :class:`MigrationPlan` (with ``dry_run=True``, the plan only).
"""

from __future__ import annotations

import attrs

__all__ = ["SCHEMA_VERSION", "MigrationPlan", "SchemaStatus"]

SCHEMA_VERSION = 1
"""The schema version this package creates and migrates to.

1: the first versioned layout (the tables of the releases before versions were
recorded, plus the version record itself). Each later change of the package's
own tables adds one migration step and raises this number by one.
"""


@attrs.frozen
class SchemaStatus:
    """Where a database stands.

    ``current`` is the version recorded in the database (``None``: none is
    recorded, a database made before versions were recorded or an empty one);
    ``expected`` is :data:`SCHEMA_VERSION`. ``pending`` describes, in words, what
    ``migrate()`` would do (empty when nothing is to do).
    """

    current: int | None
    expected: int
    pending: tuple[str, ...]

    @property
    def up_to_date(self) -> bool:
        """Nothing for ``migrate()`` to do."""
        return not self.pending and self.current == self.expected


@attrs.frozen
class MigrationPlan:
    """What ``migrate()`` ran (``applied``) or would run (a dry run).

    ``statements`` are the statements in the order they run: SQL on the SQL
    stores, index operations on MongoDB. Empty when the database was current.
    """

    from_version: int | None
    to_version: int
    statements: tuple[str, ...]
    applied: bool
