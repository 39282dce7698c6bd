"""Test helpers and the shared storage contract suite (public, stable API).

- :class:`StoreContract`: the pytest suite every storage backend passes.
  Bind it with a ``Test...`` subclass that overrides the ``store`` fixture.
  :mod:`mindmesh_auth.testing.contract` also exports its parts, one test case
  per port (``UserRepositoryContract``...), the flows and the fault cases.
- :class:`FaultyStore`: wraps a store and makes its k-th write fail (fault injection).
- :class:`FakeClock`, :class:`SeededRandomness`: control time and secrets.
- :class:`Outbox`: an in-memory mailer that lets tests read codes and tokens.
- :func:`test_config`: an :class:`AuthConfig` with fast bcrypt for tests.
"""

from ..adapters.mail import Outbox
from .clock import FakeClock, SeededRandomness
from .config import test_config
from .faults import FaultyStore

__all__ = ["FakeClock", "FaultyStore", "Outbox", "SeededRandomness", "StoreContract", "test_config"]


def __getattr__(name: str) -> object:
    # The suite imports pytest; load it only when asked for.
    if name == "StoreContract":
        from .contract import StoreContract

        return StoreContract
    raise AttributeError(name)
