"""The contract of :class:`~mindmesh_auth.core.ports.SessionRepository`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ...core.errors import DuplicateKeyError
from ...core.ports import Store
from ._support import T0, StoreFixtures, _session, _user

__all__ = ["SessionRepositoryContract"]


class SessionRepositoryContract(StoreFixtures):
    """Sessions: unique ids and refresh hashes, the rotation compare-and-swap,
    revocation, listing and purges, each race on a fresh session per round."""

    def test_session_round_trips(self, store: Store) -> None:
        user = self._with_user(store)
        session = _session(1, user, ip_address="203.0.113.9", user_agent="pytest/1")
        store.sessions.add(session)
        got = store.sessions.get(session.id)
        assert got == session

    def test_duplicate_session_id_or_refresh_hash_raises_and_stores_nothing(self, store: Store) -> None:
        user = self._with_user(store)
        first = _session(1, user)
        store.sessions.add(first)
        same_id = _session(2, user, id=first.id)
        with pytest.raises(DuplicateKeyError):
            store.sessions.add(same_id)
        same_hash = _session(3, user, refresh_hash=first.refresh_hash)
        with pytest.raises(DuplicateKeyError):
            store.sessions.add(same_hash)
        assert store.sessions.get(first.id) == first
        assert store.sessions.get_by_refresh_hash(same_id.refresh_hash) is None
        assert store.sessions.get(same_hash.id) is None
        got = store.sessions.get_by_refresh_hash(first.refresh_hash)
        assert got is not None and got.id == first.id
        assert [s.id for s in store.sessions.list_for_user(user.id, now=T0, include_inactive=True)] == [first.id]

    def test_get_with_user_returns_both_in_one_call(self, store: Store) -> None:
        user = self._with_user(store)
        store.sessions.add(_session(1, user))
        found = store.sessions.get_with_user(_session(1, user).id)
        assert found is not None
        assert found.session.id == _session(1, user).id and found.user.id == user.id
        assert found.user.email == user.email
        assert store.sessions.get_with_user("10000000-0000-4000-8000-999999999999") is None

    def test_get_with_user_sees_blocking_at_once(self, store: Store) -> None:
        user = self._with_user(store)
        store.sessions.add(_session(1, user))
        store.users.set_blocked(user.id, True, T0)
        found = store.sessions.get_with_user(_session(1, user).id)
        assert found is not None and found.user.blocked is True

    def test_lookup_by_current_refresh_hash(self, store: Store) -> None:
        user = self._with_user(store)
        store.sessions.add(_session(1, user))
        got = store.sessions.get_by_refresh_hash("refresh-hash-1")
        assert got is not None and got.id == _session(1, user).id
        assert store.sessions.get_by_refresh_hash("refresh-hash-unknown") is None

    def test_rotate_swaps_hash_and_retires_the_old_one(self, store: Store) -> None:
        user = self._with_user(store)
        session = _session(1, user)
        store.sessions.add(session)
        later = T0 + timedelta(minutes=3)
        assert store.sessions.rotate(session.id, "refresh-hash-1", "refresh-hash-1b", later) is True
        assert store.sessions.get_by_refresh_hash("refresh-hash-1") is None
        current = store.sessions.get_by_refresh_hash("refresh-hash-1b")
        assert current is not None and current.last_active_at == later
        assert current.expires_at == session.expires_at  # refresh never extends the absolute lifetime
        retired = store.sessions.get_retired("refresh-hash-1")
        assert retired is not None
        assert (retired.session_id, retired.rotated_at) == (session.id, later)
        assert store.sessions.get_retired("refresh-hash-1b") is None

    def test_rotate_is_a_compare_and_swap(self, store: Store) -> None:
        user = self._with_user(store)
        session = _session(1, user)
        store.sessions.add(session)
        assert store.sessions.rotate(session.id, "wrong-hash", "refresh-hash-x", T0) is False
        assert store.sessions.rotate(session.id, "refresh-hash-1", "refresh-hash-2", T0) is True
        assert store.sessions.rotate(session.id, "refresh-hash-1", "refresh-hash-3", T0) is False
        got = store.sessions.get(session.id)
        assert got is not None and got.refresh_hash == "refresh-hash-2"

    def test_rotate_refuses_revoked_and_expired_sessions(self, store: Store) -> None:
        user = self._with_user(store)
        revoked, expiring = _session(1, user), _session(2, user, ttl=timedelta(hours=1))
        store.sessions.add(revoked)
        store.sessions.add(expiring)
        store.sessions.revoke(revoked.id, T0, "logout")
        assert store.sessions.rotate(revoked.id, "refresh-hash-1", "n1", T0) is False
        assert store.sessions.rotate(expiring.id, "refresh-hash-2", "n2", T0 + timedelta(hours=1)) is False
        assert store.sessions.rotate(expiring.id, "refresh-hash-2", "n2", T0 + timedelta(minutes=59)) is True

    def test_revoke_is_atomic_and_idempotent(self, store: Store) -> None:
        user = self._with_user(store)
        store.sessions.add(_session(1, user))
        sid = _session(1, user).id
        assert store.sessions.revoke(sid, T0, "logout") is True
        assert store.sessions.revoke(sid, T0 + timedelta(seconds=1), "logout") is False
        got = store.sessions.get(sid)
        assert got is not None and got.revoked_at == T0 and got.revoke_reason == "logout"
        assert store.sessions.revoke("10000000-0000-4000-8000-999999999999", T0, "logout") is False

    def test_revoke_all_revokes_every_unrevoked_session_of_the_user_expired_or_not(self, store: Store) -> None:
        alice, bob = _user(1), _user(2)
        store.users.add(alice)
        store.users.add(bob)
        for n in (1, 2, 3):
            store.sessions.add(_session(n, alice))
        store.sessions.add(_session(5, alice, ttl=timedelta(hours=1)))  # expired by `now`, never revoked
        store.sessions.add(_session(4, bob))
        store.sessions.revoke(_session(3, alice).id, T0, "logout")
        now = T0 + timedelta(hours=2)
        assert store.sessions.revoke_all_for_user(alice.id, now, "blocked") == 3
        assert store.sessions.revoke_all_for_user(alice.id, now, "blocked") == 0
        for n in (1, 2, 5):
            got = store.sessions.get(_session(n, alice).id)
            assert got is not None and (got.revoked_at, got.revoke_reason) == (now, "blocked"), n
        earlier = store.sessions.get(_session(3, alice).id)
        assert earlier is not None and (earlier.revoked_at, earlier.revoke_reason) == (T0, "logout")
        bob_session = store.sessions.get(_session(4, bob).id)
        assert bob_session is not None and bob_session.revoked_at is None

    def test_list_sessions_newest_first_and_active_only_by_default(self, store: Store) -> None:
        user = self._with_user(store)
        for n in (1, 2, 3):
            store.sessions.add(_session(n, user, at=T0 + timedelta(minutes=n)))
        store.sessions.revoke(_session(2, user).id, T0, "logout")
        now = T0 + timedelta(hours=1)
        assert [s.id for s in store.sessions.list_for_user(user.id, now=now)] == [
            _session(3, user).id,
            _session(1, user).id,
        ]
        everything = store.sessions.list_for_user(user.id, now=now, include_inactive=True)
        assert [s.id for s in everything] == [_session(n, user).id for n in (3, 2, 1)]
        expired_now = T0 + timedelta(days=8)
        assert store.sessions.list_for_user(user.id, now=expired_now) == []

    def test_purge_removes_expired_sessions_and_their_retired_hashes(self, store: Store) -> None:
        user = self._with_user(store)
        store.sessions.add(_session(1, user, ttl=timedelta(hours=1)))
        store.sessions.add(_session(2, user, ttl=timedelta(days=7)))
        store.sessions.rotate(_session(1, user).id, "refresh-hash-1", "refresh-hash-1b", T0)
        assert store.sessions.purge_expired(T0 + timedelta(hours=2)) == 1
        assert store.sessions.get(_session(1, user).id) is None
        assert store.sessions.get_retired("refresh-hash-1") is None
        assert store.sessions.get(_session(2, user).id) is not None

    def test_purge_with_a_limit_deletes_bounded_batches_of_sessions_and_retired_hashes(self, store: Store) -> None:
        user = self._with_user(store)
        for n in range(1, 6):
            store.sessions.add(_session(n, user, ttl=timedelta(hours=1)))
        for n in range(1, 4):
            store.sessions.rotate(_session(n, user).id, f"refresh-hash-{n}", f"refresh-hash-{n}b", T0)
        later = T0 + timedelta(days=1)
        assert [store.sessions.purge_expired(later, limit=2) for _ in range(4)] == [2, 2, 1, 0]
        assert all(store.sessions.get_retired(f"refresh-hash-{n}") is None for n in range(1, 4))

    # -- races: a fresh session per round -----------------------------------------
    def _race_sessions(self, store: Store) -> list[str]:
        """One live session per round (``race_rounds``), all of one user; their ids."""
        user = self._with_user(store)
        for r in range(self.race_rounds):
            store.sessions.add(_session(r + 1, user))
        return [_session(r + 1, user).id for r in range(self.race_rounds)]

    def test_parallel_adds_of_one_session_id_store_one_session(self, store: Store) -> None:
        user = self._with_user(store)
        threads = self.race_threads

        def add(r: int, i: int) -> None:
            store.sessions.add(_session(5000 + r, user, refresh_hash=f"race-hash-{r}-{i}"))

        for r, results in enumerate(self._rounds(add)):
            assert all(x is None or isinstance(x, DuplicateKeyError) for x in results), results
            winners = [i for i, x in enumerate(results) if x is None]
            assert len(winners) == 1, f"round {r}: {len(winners)} sessions added with one id"
            got = store.sessions.get(_session(5000 + r, user).id)
            assert got is not None and got.refresh_hash == f"race-hash-{r}-{winners[0]}"
            for i in range(threads):
                if i != winners[0]:
                    assert store.sessions.get_by_refresh_hash(f"race-hash-{r}-{i}") is None, f"round {r}: a refused session"

    def test_parallel_adds_of_one_refresh_hash_store_one_session(self, store: Store) -> None:
        user = self._with_user(store)
        threads = self.race_threads

        def add(r: int, i: int) -> None:
            store.sessions.add(_session(6000 + r * threads + i, user, refresh_hash=f"race-hash-{r}"))

        for r, results in enumerate(self._rounds(add)):
            assert all(x is None or isinstance(x, DuplicateKeyError) for x in results), results
            winners = [i for i, x in enumerate(results) if x is None]
            assert len(winners) == 1, f"round {r}: {len(winners)} sessions added with one refresh hash"
            got = store.sessions.get_by_refresh_hash(f"race-hash-{r}")
            assert got is not None and got.id == _session(6000 + r * threads + winners[0], user).id
            for i in range(threads):
                if i != winners[0]:
                    assert store.sessions.get(_session(6000 + r * threads + i, user).id) is None, f"round {r}: a refused session"

    def test_parallel_rotation_of_one_token_has_one_winner(self, store: Store) -> None:
        ids = self._race_sessions(store)
        later = T0 + timedelta(minutes=1)

        def rotate(r: int, i: int) -> bool:
            return store.sessions.rotate(ids[r], f"refresh-hash-{r + 1}", f"successor-{r}-{i}", later)

        for r, results in enumerate(self._rounds(rotate)):
            assert all(isinstance(x, bool) for x in results), results
            assert results.count(True) == 1, f"round {r}: {results.count(True)} rotations of one token succeeded"
            winner = results.index(True)
            got = store.sessions.get(ids[r])
            assert got is not None and got.refresh_hash == f"successor-{r}-{winner}"
            retired = store.sessions.get_retired(f"refresh-hash-{r + 1}")
            assert retired is not None and (retired.session_id, retired.rotated_at) == (ids[r], later)
            losers = [i for i in range(self.race_threads) if i != winner]
            assert all(store.sessions.get_by_refresh_hash(f"successor-{r}-{i}") is None for i in losers)

    def test_parallel_revocations_report_one_revoker(self, store: Store) -> None:
        ids = self._race_sessions(store)

        def revoke(r: int, i: int) -> bool:
            return store.sessions.revoke(ids[r], T0 + timedelta(seconds=i), f"reason-{i}")

        for r, results in enumerate(self._rounds(revoke)):
            assert all(isinstance(x, bool) for x in results), results
            assert results.count(True) == 1, f"round {r}: {results.count(True)} calls revoked one session"
            winner = results.index(True)
            got = store.sessions.get(ids[r])
            assert got is not None
            assert (got.revoked_at, got.revoke_reason) == (T0 + timedelta(seconds=winner), f"reason-{winner}")
