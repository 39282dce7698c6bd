"""The old import path of :class:`~mindmesh_auth.testing.contract.faults.FaultContract` (kept stable)."""

from .contract.faults import FaultContract as FaultContract
