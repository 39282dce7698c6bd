"""SQL storage over the app's own Peewee database (SQLite, PostgreSQL, MySQL/MariaDB)."""

from . import _logging  # noqa: F401  (installs the filter that keeps query parameters out of peewee's DEBUG log)
from .errors import translate_errors
from .models import BaseUserModel, BinaryCharField, EpochMillisField, UserModel
from .store import PeeweeStore

__all__ = ["BaseUserModel", "BinaryCharField", "EpochMillisField", "PeeweeStore", "UserModel", "translate_errors"]
