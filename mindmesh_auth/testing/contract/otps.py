"""The contract of :class:`~mindmesh_auth.core.ports.OtpRepository`."""

from __future__ import annotations

from datetime import timedelta

from ...core.ports import Store
from ._support import T0, StoreFixtures, _challenge

__all__ = ["OtpRepositoryContract"]


class OtpRepositoryContract(StoreFixtures):
    """One-time-code challenges: one per (email, purpose), sent once, counted
    attempts under a cap, consumed or redeemed once; each race on a fresh
    challenge per round."""

    def test_challenge_round_trips(self, store: Store) -> None:
        challenge = _challenge(1)
        store.otps.put(challenge)
        assert store.otps.get(challenge.email, "login") == challenge
        assert store.otps.get(challenge.email, "email_verify") is None

    def test_new_challenge_supersedes_same_email_and_purpose_only(self, store: Store) -> None:
        store.otps.put(_challenge(1))
        store.otps.put(_challenge(2, purpose="email_verify"))
        store.otps.put(_challenge(3))
        current = store.otps.get("user1@example.com", "login")
        assert current is not None and current.id == _challenge(3).id and current.attempts == 0
        other = store.otps.get("user1@example.com", "email_verify")
        assert other is not None and other.id == _challenge(2).id
        assert store.otps.register_attempt(_challenge(1).id, T0, 5) is None  # superseded code is dead

    def test_mark_sent_flips_pending_once(self, store: Store) -> None:
        store.otps.put(_challenge(1))
        assert store.otps.mark_sent(_challenge(1).id) is True
        assert store.otps.mark_sent(_challenge(1).id) is False
        got = store.otps.get("user1@example.com", "login")
        assert got is not None and got.status == "sent"
        assert store.otps.mark_sent(_challenge(9).id) is False

    def test_mark_sent_is_false_for_a_superseded_or_discarded_challenge(self, store: Store) -> None:
        store.otps.put(_challenge(1))
        store.otps.put(_challenge(2))  # supersedes 1 (same email and purpose)
        store.otps.put(_challenge(3, email="b@example.com"))
        store.otps.discard(_challenge(3).id)
        assert store.otps.mark_sent(_challenge(1).id) is False
        assert store.otps.mark_sent(_challenge(3).id) is False
        current = store.otps.get("user1@example.com", "login")
        assert current is not None and (current.id, current.status) == (_challenge(2).id, "pending")
        assert store.otps.get("b@example.com", "login") is None
        assert store.otps.mark_sent(_challenge(2).id) is True

    def test_pending_challenge_cannot_be_attempted(self, store: Store) -> None:
        store.otps.put(_challenge(1))
        assert store.otps.register_attempt(_challenge(1).id, T0, 5) is None

    def test_attempts_count_up_to_the_cap_then_the_code_is_dead(self, store: Store) -> None:
        store.otps.put(_challenge(1, status="sent"))
        cid = _challenge(1).id
        assert [store.otps.register_attempt(cid, T0, 5) for _ in range(7)] == [1, 2, 3, 4, 5, None, None]
        got = store.otps.get("user1@example.com", "login")
        assert got is not None and got.attempts == 5

    def test_attempt_after_expiry_is_refused(self, store: Store) -> None:
        store.otps.put(_challenge(1, status="sent"))
        expiry = _challenge(1).expires_at
        assert store.otps.register_attempt(_challenge(1).id, expiry, 5) is None
        assert store.otps.register_attempt(_challenge(1).id, expiry - timedelta(milliseconds=1), 5) == 1

    def test_consume_succeeds_once_and_not_after_expiry(self, store: Store) -> None:
        store.otps.put(_challenge(1, status="sent"))
        store.otps.put(_challenge(2, email="user2@example.com", status="sent"))
        assert store.otps.consume(_challenge(1).id, T0) is True
        assert store.otps.consume(_challenge(1).id, T0) is False
        assert store.otps.register_attempt(_challenge(1).id, T0, 5) is None
        assert store.otps.consume(_challenge(2).id, T0 + timedelta(minutes=5)) is False

    def test_redeem_counts_an_attempt_and_consumes_once(self, store: Store) -> None:
        store.otps.put(_challenge(1, status="sent"))
        cid = _challenge(1).id
        assert store.otps.register_attempt(cid, T0, 5) == 1
        assert store.otps.redeem(cid, T0 + timedelta(seconds=1), 5) is True
        got = store.otps.get("user1@example.com", "login")
        assert got is not None and got.attempts == 2 and got.consumed_at == T0 + timedelta(seconds=1)
        assert store.otps.redeem(cid, T0, 5) is False
        assert store.otps.consume(cid, T0) is False
        assert store.otps.register_attempt(cid, T0, 5) is None

    def test_redeem_refuses_a_dead_challenge_and_changes_nothing(self, store: Store) -> None:
        store.otps.put(_challenge(1))  # pending: never sent
        store.otps.put(_challenge(2, email="b@example.com", status="sent"))
        store.otps.put(_challenge(3, email="c@example.com", status="sent"))
        store.otps.put(_challenge(4, email="d@example.com", status="sent"))
        assert [store.otps.register_attempt(_challenge(3).id, T0, 2) for _ in range(2)] == [1, 2]
        assert store.otps.consume(_challenge(4).id, T0) is True
        expiry = _challenge(2).expires_at
        assert store.otps.redeem(_challenge(1).id, T0, 5) is False
        assert store.otps.redeem(_challenge(2).id, expiry, 5) is False  # expired at expires_at
        assert store.otps.redeem(_challenge(3).id, T0, 2) is False  # out of attempts
        assert store.otps.redeem(_challenge(4).id, T0, 5) is False  # consumed
        assert store.otps.redeem(_challenge(9).id, T0, 5) is False  # unknown
        expected = {
            "user1@example.com": (0, None),
            "b@example.com": (0, None),
            "c@example.com": (2, None),
            "d@example.com": (0, T0),
        }
        for email, (attempts, consumed_at) in expected.items():
            got = store.otps.get(email, "login")
            assert got is not None and (got.attempts, got.consumed_at) == (attempts, consumed_at), email
        assert store.otps.redeem(_challenge(2).id, expiry - timedelta(milliseconds=1), 5) is True

    def test_discard_removes_the_challenge(self, store: Store) -> None:
        store.otps.put(_challenge(1))
        store.otps.discard(_challenge(1).id)
        assert store.otps.get("user1@example.com", "login") is None
        store.otps.discard(_challenge(1).id)  # no error when already gone

    def test_purge_removes_expired_and_consumed_challenges(self, store: Store) -> None:
        store.otps.put(_challenge(1, status="sent"))
        store.otps.put(_challenge(2, email="b@example.com", status="sent"))
        store.otps.put(_challenge(3, email="c@example.com", expires_at=T0 + timedelta(minutes=30)))
        store.otps.consume(_challenge(2).id, T0)
        assert store.otps.purge_expired(T0 + timedelta(minutes=10)) == 2
        assert store.otps.get("c@example.com", "login") is not None

    def test_purge_with_a_limit_deletes_bounded_batches_of_challenges(self, store: Store) -> None:
        for n in range(1, 4):
            store.otps.put(_challenge(n, email=f"user{n}@example.com"))
        later = T0 + timedelta(days=1)
        assert [store.otps.purge_expired(later, limit=2) for _ in range(3)] == [2, 1, 0]

    def test_purge_limit_counts_expired_and_consumed_challenges_together(self, store: Store) -> None:
        # Two expired, two consumed but not expired, one live: never more than the limit per call.
        for n in range(1, 3):
            store.otps.put(_challenge(n, email=f"old{n}@example.com"))
        for n in range(3, 6):
            store.otps.put(_challenge(n, email=f"new{n}@example.com", status="sent", expires_at=T0 + timedelta(hours=2)))
        for n in range(3, 5):
            assert store.otps.consume(_challenge(n).id, T0) is not None
        now = T0 + timedelta(hours=1)
        assert [store.otps.purge_expired(now, limit=3) for _ in range(3)] == [3, 1, 0]
        assert store.otps.get("new5@example.com", "login") is not None
        assert all(store.otps.get(f"new{n}@example.com", "login") is None for n in (3, 4))

    def test_a_challenge_put_as_sent_replaces_the_delivered_one_and_works_at_once(self, store: Store) -> None:
        # The core stores a code only once its mail was accepted, already ``sent`` (issue 11).
        store.otps.put(_challenge(1, status="sent"))
        assert store.otps.register_attempt(_challenge(1).id, T0, 5) == 1
        store.otps.put(_challenge(2, status="sent"))
        current = store.otps.get("user1@example.com", "login")
        assert current is not None and (current.id, current.status, current.attempts) == (_challenge(2).id, "sent", 0)
        assert store.otps.redeem(_challenge(1).id, T0, 5) is False  # the replaced code is dead
        assert store.otps.register_attempt(_challenge(2).id, T0, 5) == 1

    # -- races: a fresh challenge per round -------------------------------------------
    def _race_challenges(self, store: Store, status: str) -> list[str]:
        """One challenge per round (``race_rounds``), each for its own email; their ids."""
        for r in range(self.race_rounds):
            store.otps.put(_challenge(100 + r, email=f"race{r}@example.com", status=status))
        return [_challenge(100 + r).id for r in range(self.race_rounds)]

    def test_parallel_puts_for_one_email_and_purpose_leave_one_challenge(self, store: Store) -> None:
        threads = self.race_threads

        def put(r: int, i: int) -> None:
            store.otps.put(_challenge(1000 + r * threads + i, email=f"race{r}@example.com"))

        rounds = self._rounds(put)
        for r, results in enumerate(rounds):
            assert results == [None] * threads, f"round {r}: {results}"
            put_ids = [_challenge(1000 + r * threads + i).id for i in range(threads)]
            current = store.otps.get(f"race{r}@example.com", "login")
            assert current is not None and current.id in put_ids, f"round {r}: {current}"
            # Only the surviving challenge still exists: marking any other one sent fails.
            sent = [cid for cid in put_ids if store.otps.mark_sent(cid)]
            assert sent == [current.id], f"round {r}: {len(sent)} challenges of one email and purpose exist"
        assert store.otps.purge_expired(T0 + timedelta(days=1)) == len(rounds)

    def test_parallel_mark_sent_of_one_challenge_has_one_winner(self, store: Store) -> None:
        ids = self._race_challenges(store, "pending")
        for r, results in enumerate(self._rounds(lambda r, i: store.otps.mark_sent(ids[r]))):
            assert all(isinstance(x, bool) for x in results), results
            assert results.count(True) == 1, f"round {r}: {results.count(True)} calls marked one challenge sent"
            got = store.otps.get(f"race{r}@example.com", "login")
            assert got is not None and got.status == "sent"

    def test_parallel_attempts_count_exactly_and_never_exceed_the_cap(self, store: Store) -> None:
        ids = self._race_challenges(store, "sent")
        cap = max(1, self.race_threads // 2)
        for r, results in enumerate(self._rounds(lambda r, i: store.otps.register_attempt(ids[r], T0, cap))):
            counted = sorted(x for x in results if isinstance(x, int))
            assert all(x is None or isinstance(x, int) for x in results), results
            assert counted == list(range(1, cap + 1)), f"round {r}: attempts counted {counted} (cap {cap})"
            got = store.otps.get(f"race{r}@example.com", "login")
            assert got is not None and got.attempts == cap

    def test_parallel_consumption_has_one_winner(self, store: Store) -> None:
        ids = self._race_challenges(store, "sent")
        for r, results in enumerate(self._rounds(lambda r, i: store.otps.consume(ids[r], T0 + timedelta(seconds=i)))):
            assert all(isinstance(x, bool) for x in results), results
            assert results.count(True) == 1, f"round {r}: {results.count(True)} calls consumed one challenge"
            got = store.otps.get(f"race{r}@example.com", "login")
            assert got is not None and got.consumed_at == T0 + timedelta(seconds=results.index(True))

    def test_parallel_redemption_has_one_winner(self, store: Store) -> None:
        ids = self._race_challenges(store, "sent")
        threads = self.race_threads

        def redeem(r: int, i: int) -> bool:
            return store.otps.redeem(ids[r], T0 + timedelta(seconds=i), 1_000)

        for r, results in enumerate(self._rounds(redeem)):
            assert all(isinstance(x, bool) for x in results), results
            assert results.count(True) == 1, f"round {r}: {results.count(True)} calls redeemed one challenge"
            got = store.otps.get(f"race{r}@example.com", "login")
            assert got is not None and got.consumed_at == T0 + timedelta(seconds=results.index(True))
            # One step in the store; the port's default (attempt, then consume) may count a loser's attempt.
            assert 1 <= got.attempts <= threads
            assert store.otps.redeem(ids[r], T0, 1_000) is False
