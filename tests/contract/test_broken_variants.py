"""The contract suite catches every broken variant of the memory store (``broken_memory.py``).

For each atomic rule, the port's contract case runs (in-process, with pytest's
``pytester``) on a memory store broken on that rule only, and must fail, with a
race case of that rule among its failures and no other case failing (the
variant is right when called one at a time). The correct memory store passes
the same cases with 50 threads.

Each variant runs once. ``MINDMESH_BROKEN_VARIANT_ROUNDS=10`` repeats each
variant's run ten times and prints how many runs caught it (every run must).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONTRACT_DIR = str(Path(__file__).resolve().parent)
ROUNDS = int(os.environ.get("MINDMESH_BROKEN_VARIANT_ROUNDS", "1"))

# rule -> (the port's contract case, the race cases that prove the rule)
TARGETS: dict[str, tuple[str, frozenset[str]]] = {
    "users.add": ("UserRepositoryContract", frozenset({"test_parallel_registration_of_one_email_creates_one_user"})),
    "users.delete": ("UserRepositoryContract", frozenset({"test_parallel_deletes_of_one_user_have_one_winner"})),
    "users.change_email": (
        "UserRepositoryContract",
        frozenset({"test_parallel_changes_of_two_users_to_one_address_have_one_winner"}),
    ),
    "sessions.add": (
        "SessionRepositoryContract",
        frozenset(
            {
                "test_parallel_adds_of_one_session_id_store_one_session",
                "test_parallel_adds_of_one_refresh_hash_store_one_session",
            }
        ),
    ),
    "sessions.rotate": ("SessionRepositoryContract", frozenset({"test_parallel_rotation_of_one_token_has_one_winner"})),
    "sessions.revoke": ("SessionRepositoryContract", frozenset({"test_parallel_revocations_report_one_revoker"})),
    "otps.put": ("OtpRepositoryContract", frozenset({"test_parallel_puts_for_one_email_and_purpose_leave_one_challenge"})),
    "otps.mark_sent": ("OtpRepositoryContract", frozenset({"test_parallel_mark_sent_of_one_challenge_has_one_winner"})),
    "otps.register_attempt": (
        "OtpRepositoryContract",
        frozenset({"test_parallel_attempts_count_exactly_and_never_exceed_the_cap"}),
    ),
    "otps.consume": ("OtpRepositoryContract", frozenset({"test_parallel_consumption_has_one_winner"})),
    "otps.redeem": ("OtpRepositoryContract", frozenset({"test_parallel_redemption_has_one_winner"})),
    "reset_tokens.put": (
        "ResetTokenRepositoryContract",
        frozenset({"test_parallel_puts_for_one_user_leave_one_unconsumed_token"}),
    ),
    "reset_tokens.consume": (
        "ResetTokenRepositoryContract",
        frozenset({"test_parallel_reset_consumption_has_one_winner"}),
    ),
    "rate_limits.hit": (
        "RateLimitRepositoryContract",
        frozenset(
            {
                "test_parallel_hits_count_exactly",
                "test_parallel_hits_on_an_expired_counter_restart_it_once",
                "test_parallel_hit_many_counts_every_counter_exactly",  # the port's default hits one at a time
            }
        ),
    ),
}

BINDING = """
import sys

sys.path.insert(0, {contract_dir!r})

import pytest
from broken_memory import VARIANTS

from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.testing.contract import {case}


class TestBinding({case}):
    race_threads = {threads}

    @pytest.fixture
    def store(self):
        yield {store}
"""


def _run(pytester: pytest.Pytester, case: str, store: str, threads: int = 20) -> tuple[set[str], int]:
    """Run ``case`` bound to ``store`` (an expression) in-process; (failed case names, passed count)."""
    pytester.makepyfile(test_binding=BINDING.format(contract_dir=CONTRACT_DIR, case=case, store=store, threads=threads))
    recorder = pytester.inline_run("-p", "no:cacheprovider", "-q")
    passed, _skipped, failed = recorder.listoutcomes()
    return {report.nodeid.rsplit("::", 1)[-1] for report in failed}, len(passed)


def test_every_atomic_rule_has_a_broken_variant() -> None:
    from broken_memory import VARIANTS

    assert set(VARIANTS) == set(TARGETS)


@pytest.mark.parametrize("rule", sorted(TARGETS))
def test_the_contract_catches_the_broken_variant(pytester: pytest.Pytester, rule: str) -> None:
    case, targets = TARGETS[rule]
    caught = 0
    for _ in range(ROUNDS):
        failed, passed = _run(pytester, case, f"VARIANTS[{rule!r}]()")
        assert passed > 0, f"{rule}: no case of {case} ran"
        assert failed <= targets, f"{rule}: cases that do not race failed too: {sorted(failed - targets)}"
        caught += bool(failed)
    if ROUNDS > 1:
        print(f"\nbroken {rule}: caught in {caught}/{ROUNDS} runs")
    assert caught == ROUNDS, f"{rule}: the contract caught the broken variant in {caught} of {ROUNDS} runs"


def test_the_memory_store_passes_the_same_cases_with_fifty_threads(pytester: pytest.Pytester) -> None:
    cases = sorted({case for case, _targets in TARGETS.values()} | {"FacadeFlowContract"})
    for case in cases:
        failed, passed = _run(pytester, case, "MemoryStore()", threads=50)
        assert failed == set(), f"{case}: {sorted(failed)}"
        assert passed > 0, case
