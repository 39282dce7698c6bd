"""MongoDB storage: ``MongoStore`` over the app's own ``pymongo`` database.

Needs the ``mongo`` extra (``pip install 'mindmesh-auth[mongo]'``). See
``docs/mongodb.md`` for the collections, indexes and atomicity design.
"""

from .store import DEFAULT_COLLECTIONS, DEFAULT_DATABASE, MongoStore

__all__ = ["DEFAULT_COLLECTIONS", "DEFAULT_DATABASE", "MongoStore"]
