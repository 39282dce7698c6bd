"""The storage contract suite: every rule a backend must hold, proven identically.

Bind it to a backend in a few lines::

    import pytest
    from mindmesh_auth.testing import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self):
            store = MyStore(...)
            store.create_schema()
            yield store          # a FRESH, EMPTY store for every test
            store.close()

:class:`StoreContract` is the union of one test case per port, each usable on
its own (a backend under construction can bind only the ports it has):

========================================  ===========================================
:class:`UserRepositoryContract`           ``users.py``
:class:`SessionRepositoryContract`        ``sessions.py``
:class:`OtpRepositoryContract`            ``otps.py``
:class:`ResetTokenRepositoryContract`     ``reset_tokens.py``
:class:`RateLimitRepositoryContract`      ``rate_limits.py``
:class:`AuditRepositoryContract`          ``audit.py``
:class:`FacadeFlowContract`               ``flows.py``: whole flows and races through the facade
:class:`FaultContract`                    ``faults.py``: every operation all or nothing
:class:`ModelContract`                    ``model.py``: random port calls against the memory store
========================================  ===========================================

Settings a binding may override are class attributes, documented on
:class:`~mindmesh_auth.testing.contract._support.StoreFixtures` (the base of
every case): ``race_threads``, ``race_rounds``, ``flow_race_rounds``,
``profile_fields`` and ``profile_value_types``.
"""

from __future__ import annotations

from ._support import PASSWORD as PASSWORD
from ._support import T0 as T0
from ._support import StoreFixtures
from ._support import _challenge as _challenge
from ._support import _parallel as _parallel
from ._support import _reset as _reset
from ._support import _session as _session
from ._support import _user as _user
from .audit import AuditRepositoryContract
from .faults import FaultContract
from .flows import FacadeFlowContract
from .model import ModelContract
from .otps import OtpRepositoryContract
from .rate_limits import RateLimitRepositoryContract
from .reset_tokens import ResetTokenRepositoryContract
from .sessions import SessionRepositoryContract
from .users import UserRepositoryContract

__all__ = [
    "AuditRepositoryContract",
    "FacadeFlowContract",
    "FaultContract",
    "ModelContract",
    "OtpRepositoryContract",
    "RateLimitRepositoryContract",
    "ResetTokenRepositoryContract",
    "SessionRepositoryContract",
    "StoreContract",
    "StoreFixtures",
    "UserRepositoryContract",
]


class StoreContract(
    UserRepositoryContract,
    SessionRepositoryContract,
    OtpRepositoryContract,
    ResetTokenRepositoryContract,
    RateLimitRepositoryContract,
    AuditRepositoryContract,
    FacadeFlowContract,
    FaultContract,
    ModelContract,
):
    """The whole suite: every port's case, the facade flows, the fault cases and the
    model-based check (Hypothesis: ``MINDMESH_MODEL_EXAMPLES`` / ``MINDMESH_MODEL_STEPS``
    run it longer than the default 30 examples of 100 steps).

    Subclasses override the ``store`` fixture (see the module docstring) and may
    set the class attributes of :class:`StoreFixtures`:

    ``race_threads`` (20)
        Threads per round of a race case, released together by a barrier.
    ``race_rounds`` (10)
        Rounds of each storage race case, each on a fresh row or key.
    ``flow_race_rounds`` (3)
        Rounds of each race through the facade, each with a fresh account.
    ``profile_fields`` (``{"first_name": "Ada", "role": "admin"}``)
        Profile fields users must store.
    ``profile_value_types`` (``str``, ``int``, ``float``, ``bool`` and ``None`` values)
        Profile values that must round-trip with their types; ``{}`` opts out.
    """
