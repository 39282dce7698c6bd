"""The contract of :class:`~mindmesh_auth.core.ports.ResetTokenRepository`."""

from __future__ import annotations

from datetime import timedelta

from ...core.models import ResetToken
from ...core.ports import Store
from ._support import T0, StoreFixtures, _reset, _user

__all__ = ["ResetTokenRepositoryContract"]


class ResetTokenRepositoryContract(StoreFixtures):
    """Password reset tokens: one unconsumed token per user (also under parallel
    puts), consumed once, purged when expired or used."""

    def test_reset_token_consumed_once(self, store: Store) -> None:
        user = self._with_user(store)
        store.reset_tokens.put(_reset(1, user.id))
        got = store.reset_tokens.get("reset-hash-1")
        assert got is not None and got.user_id == user.id and got.consumed_at is None
        used = store.reset_tokens.consume("reset-hash-1", T0)
        assert used is not None and used.user_id == user.id
        assert store.reset_tokens.consume("reset-hash-1", T0) is None
        assert store.reset_tokens.consume("reset-hash-unknown", T0) is None

    def test_expired_reset_token_is_not_consumed(self, store: Store) -> None:
        user = self._with_user(store)
        store.reset_tokens.put(_reset(1, user.id))
        assert store.reset_tokens.consume("reset-hash-1", T0 + timedelta(hours=1)) is None

    def test_newer_reset_token_supersedes_older_ones(self, store: Store) -> None:
        user = self._with_user(store)
        other = _user(2)
        store.users.add(other)
        store.reset_tokens.put(_reset(1, user.id))
        store.reset_tokens.put(_reset(2, other.id))
        store.reset_tokens.put(_reset(3, user.id))
        assert store.reset_tokens.consume("reset-hash-1", T0) is None
        assert store.reset_tokens.get("reset-hash-2") is not None
        assert store.reset_tokens.consume("reset-hash-3", T0) is not None

    def test_put_with_a_stored_hash_replaces_that_token(self, store: Store) -> None:
        user = self._with_user(store)
        store.reset_tokens.put(_reset(1, user.id))
        replacement = _reset(2, user.id, token_hash="reset-hash-1", ttl=timedelta(hours=2))
        store.reset_tokens.put(replacement)
        got = store.reset_tokens.get("reset-hash-1")
        assert got == replacement
        assert store.reset_tokens.delete_for_user(user.id) == 1

    def test_delete_reset_tokens_for_user(self, store: Store) -> None:
        user = self._with_user(store)
        store.reset_tokens.put(_reset(1, user.id))
        assert store.reset_tokens.delete_for_user(user.id) == 1
        assert store.reset_tokens.get("reset-hash-1") is None

    def test_purge_removes_expired_and_used_reset_tokens(self, store: Store) -> None:
        a, b = _user(1), _user(2)
        store.users.add(a)
        store.users.add(b)
        store.reset_tokens.put(_reset(1, a.id, ttl=timedelta(minutes=10)))
        store.reset_tokens.put(_reset(2, b.id, ttl=timedelta(hours=2)))
        assert store.reset_tokens.purge_expired(T0 + timedelta(hours=1)) == 1
        assert store.reset_tokens.get("reset-hash-2") is not None

    def test_purge_with_a_limit_deletes_bounded_batches_of_tokens(self, store: Store) -> None:
        for n in range(1, 4):
            store.users.add(_user(n))
            store.reset_tokens.put(_reset(n, _user(n).id, ttl=timedelta(minutes=1)))
        later = T0 + timedelta(days=1)
        assert [store.reset_tokens.purge_expired(later, limit=2) for _ in range(3)] == [2, 1, 0]

    def test_purge_limit_counts_expired_and_used_tokens_together(self, store: Store) -> None:
        # Two expired, two used but not expired, one live: never more than the limit per call.
        for n in range(1, 6):
            store.users.add(_user(n))
            ttl = timedelta(minutes=10) if n <= 2 else timedelta(hours=2)
            store.reset_tokens.put(_reset(n, _user(n).id, ttl=ttl))
        for n in (3, 4):
            assert store.reset_tokens.consume(f"reset-hash-{n}", T0) is not None
        now = T0 + timedelta(hours=1)
        assert [store.reset_tokens.purge_expired(now, limit=3) for _ in range(3)] == [3, 1, 0]
        assert store.reset_tokens.get("reset-hash-5") is not None
        assert all(store.reset_tokens.get(f"reset-hash-{n}") is None for n in (1, 2, 3, 4))

    # -- races: a fresh user or token per round ------------------------------------------
    def test_parallel_puts_for_one_user_leave_one_unconsumed_token(self, store: Store) -> None:
        threads = self.race_threads
        for r in range(self.race_rounds):
            store.users.add(_user(100 + r))

        def put(r: int, i: int) -> None:
            store.reset_tokens.put(_reset(1000 + r * threads + i, _user(100 + r).id))

        for r, results in enumerate(self._rounds(put)):
            assert results == [None] * threads, f"round {r}: {results}"
            hashes = [f"reset-hash-{1000 + r * threads + i}" for i in range(threads)]
            live = [h for h in hashes if store.reset_tokens.get(h) is not None]
            assert len(live) == 1, f"round {r}: {len(live)} unconsumed tokens of one user remain"
            assert store.reset_tokens.delete_for_user(_user(100 + r).id) == 1, f"round {r}: more than one token stored"

    def test_parallel_reset_consumption_has_one_winner(self, store: Store) -> None:
        for r in range(self.race_rounds):
            store.users.add(_user(100 + r))
            store.reset_tokens.put(_reset(100 + r, _user(100 + r).id))

        def consume(r: int, i: int) -> ResetToken | None:
            return store.reset_tokens.consume(f"reset-hash-{100 + r}", T0 + timedelta(seconds=i))

        for r, results in enumerate(self._rounds(consume)):
            assert all(x is None or isinstance(x, ResetToken) for x in results), results
            winners = [i for i, x in enumerate(results) if isinstance(x, ResetToken)]
            assert len(winners) == 1, f"round {r}: {len(winners)} calls consumed one token"
            got = store.reset_tokens.get(f"reset-hash-{100 + r}")
            assert got is not None and got.consumed_at == T0 + timedelta(seconds=winners[0])
