"""The contract of :class:`~mindmesh_auth.core.ports.RateLimitRepository`.

Counters are observed through what the port offers: the state ``hit`` returns,
``reset`` and the counts of ``purge_expired``.
"""

from __future__ import annotations

from datetime import timedelta

from ...core.ports import CounterState, Store
from ._support import T0, StoreFixtures

__all__ = ["RateLimitRepositoryContract"]


class RateLimitRepositoryContract(StoreFixtures):
    """Rate-limit counters: fixed windows, restarts, resets, purges, exact counts under races."""

    def test_counter_counts_within_its_window(self, store: Store) -> None:
        end = T0 + timedelta(minutes=10)
        assert store.rate_limits.hit("k", T0, end).count == 1
        state = store.rate_limits.hit("k", T0 + timedelta(minutes=1), T0 + timedelta(minutes=11))
        assert (state.count, state.expires_at) == (2, end)  # the window does not slide
        assert store.rate_limits.hit("k", T0, end, amount=3).count == 5
        other = store.rate_limits.hit("other", T0, end)
        assert other.count == 1

    def test_zero_and_negative_amounts_read_and_refund(self, store: Store) -> None:
        end = T0 + timedelta(minutes=10)
        store.rate_limits.hit("k", T0, end, amount=3)
        now = T0 + timedelta(minutes=1)
        assert store.rate_limits.hit("k", now, now, amount=0) == CounterState(3, end)  # a read
        assert store.rate_limits.hit("k", now, now, amount=-1) == CounterState(2, end)  # a refund
        assert store.rate_limits.hit("k", now, end).count == 3
        # On a missing or expired counter they restart it already expired: nothing live is left.
        assert store.rate_limits.hit("absent", now, now, amount=-1) == CounterState(-1, now)
        assert store.rate_limits.hit("absent", now, end) == CounterState(1, end)
        later = T0 + timedelta(minutes=10)
        assert store.rate_limits.hit("k", later, later, amount=0) == CounterState(0, later)
        assert store.rate_limits.hit("k", later, later + timedelta(minutes=5)) == CounterState(1, later + timedelta(minutes=5))

    def test_expired_counter_restarts(self, store: Store) -> None:
        store.rate_limits.hit("k", T0, T0 + timedelta(minutes=10))
        store.rate_limits.hit("k", T0, T0 + timedelta(minutes=10))
        later = T0 + timedelta(minutes=10)
        state = store.rate_limits.hit("k", later, later + timedelta(minutes=10))
        assert (state.count, state.expires_at) == (1, later + timedelta(minutes=10))

    def test_reset_deletes_the_counter(self, store: Store) -> None:
        end = T0 + timedelta(minutes=10)
        store.rate_limits.hit("k", T0, end)
        store.rate_limits.hit("k", T0, end)
        store.rate_limits.hit("kept", T0, end)
        store.rate_limits.reset("k")
        later = T0 + timedelta(minutes=20)
        assert store.rate_limits.hit("k", T0, later) == CounterState(1, later)  # restarted, with the new window
        assert store.rate_limits.hit("kept", T0, later) == CounterState(2, end)
        store.rate_limits.reset("never-existed")

    def test_purge_removes_expired_counters(self, store: Store) -> None:
        store.rate_limits.hit("a", T0, T0 + timedelta(minutes=1))
        store.rate_limits.hit("b", T0, T0 + timedelta(hours=1))
        now = T0 + timedelta(minutes=5)
        assert store.rate_limits.purge_expired(now) == 1
        assert store.rate_limits.purge_expired(now) == 0
        assert store.rate_limits.hit("b", now, now + timedelta(hours=1)).count == 2  # the live one stayed

    def test_purge_with_a_limit_deletes_bounded_batches_of_counters(self, store: Store) -> None:
        for n in range(1, 6):
            store.rate_limits.hit(f"key-{n}", T0, T0 + timedelta(minutes=1))
        later = T0 + timedelta(days=1)
        assert [store.rate_limits.purge_expired(later, limit=3) for _ in range(3)] == [3, 2, 0]

    def test_hit_many_counts_each_counter_as_hit_would(self, store: Store) -> None:
        end, far = T0 + timedelta(minutes=10), T0 + timedelta(hours=1)
        store.rate_limits.hit("a", T0, end, amount=2)
        now = T0 + timedelta(minutes=1)
        # A live counter grows and keeps its window; a new one starts with its own.
        assert store.rate_limits.hit_many([("a", far), ("b", far)], now) == [CounterState(3, end), CounterState(1, far)]
        # Results come in the order asked; an expired counter restarts with the new window.
        later = T0 + timedelta(minutes=10)
        fresh = later + timedelta(minutes=5)
        assert store.rate_limits.hit_many([("b", fresh), ("a", fresh)], later) == [CounterState(2, far), CounterState(1, fresh)]
        assert store.rate_limits.hit_many([("c", far)], now) == [CounterState(1, far)]
        assert store.rate_limits.hit_many([], now) == []

    def test_reset_many_deletes_only_the_listed_counters(self, store: Store) -> None:
        end = T0 + timedelta(minutes=10)
        for key in ("a", "b", "c"):
            store.rate_limits.hit(key, T0, end, amount=5)
        store.rate_limits.reset_many(["a", "c", "absent"])
        store.rate_limits.reset_many([])
        assert [store.rate_limits.hit(key, T0, end).count for key in ("a", "b", "c")] == [1, 6, 1]

    def test_parallel_hit_many_counts_every_counter_exactly(self, store: Store) -> None:
        threads = self.race_threads
        end = T0 + timedelta(minutes=10)

        def both(r: int, i: int) -> list[CounterState]:
            return store.rate_limits.hit_many([(f"pair-a-{r}", end), (f"pair-b-{r}", end)], T0)

        for r, results in enumerate(self._rounds(both)):
            assert all(isinstance(x, list) for x in results), results
            for index, key in enumerate((f"pair-a-{r}", f"pair-b-{r}")):
                counts = sorted(x[index].count for x in results if isinstance(x, list))
                assert counts == list(range(1, threads + 1)), f"round {r}, {key}: counts {counts}"
                assert store.rate_limits.hit(key, T0, end) == CounterState(threads + 1, end)

    def test_parallel_hits_count_exactly(self, store: Store) -> None:
        threads = self.race_threads
        end = T0 + timedelta(minutes=10)
        for r, results in enumerate(self._rounds(lambda r, i: store.rate_limits.hit(f"hot-{r}", T0, end))):
            assert all(isinstance(x, CounterState) for x in results), results
            counts = sorted(x.count for x in results if isinstance(x, CounterState))
            assert counts == list(range(1, threads + 1)), f"round {r}: counts {counts}"
            assert store.rate_limits.hit(f"hot-{r}", T0, end) == CounterState(threads + 1, end)

    def test_parallel_hits_on_an_expired_counter_restart_it_once(self, store: Store) -> None:
        threads = self.race_threads
        for r in range(self.race_rounds):
            store.rate_limits.hit(f"stale-{r}", T0, T0 + timedelta(minutes=1), amount=100)
        now, end = T0 + timedelta(minutes=2), T0 + timedelta(minutes=12)
        for r, results in enumerate(self._rounds(lambda r, i: store.rate_limits.hit(f"stale-{r}", now, end))):
            assert all(isinstance(x, CounterState) for x in results), results
            states = sorted((x.count, x.expires_at) for x in results if isinstance(x, CounterState))
            assert states == [(n, end) for n in range(1, threads + 1)], f"round {r}: {states}"
