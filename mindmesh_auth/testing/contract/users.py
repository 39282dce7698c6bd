"""The contract of :class:`~mindmesh_auth.core.ports.UserRepository`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ...core.errors import DuplicateKeyError
from ...core.models import User
from ...core.ports import Store
from ._support import T0, StoreFixtures, _assert_profile, _session, _user

__all__ = ["UserRepositoryContract"]


class UserRepositoryContract(StoreFixtures):
    """Users: round trips, profile fields and value types, the unique email under races."""

    def test_user_round_trips_with_aware_utc_times(self, store: Store) -> None:
        user = _user(1)
        store.users.add(user)
        got = store.users.get(user.id)
        assert got is not None
        assert (got.id, got.email, got.password_hash) == (user.id, user.email, user.password_hash)
        assert got.created_at == T0 and got.created_at.utcoffset() == timedelta(0)
        assert (got.email_verified, got.blocked) == (False, False)

    def test_user_profile_fields_round_trip(self, store: Store) -> None:
        user = _user(1, **self.profile_fields)
        returned = store.users.add(user)
        _assert_profile(returned.profile, self.profile_fields)
        got = store.users.get(user.id)
        assert got is not None
        _assert_profile(got.profile, self.profile_fields)
        by_email = store.users.get_by_email(user.email)
        assert by_email is not None
        _assert_profile(by_email.profile, self.profile_fields)

    def test_user_profile_values_keep_their_types(self, store: Store) -> None:
        if not self.profile_value_types:
            pytest.skip("this binding opted out of profile value types (profile_value_types = {})")
        full = _user(1, **self.profile_value_types)
        _assert_profile(store.users.add(full).profile, self.profile_value_types)
        # A second user with every field None: None round-trips, and nothing leaks from the first.
        flipped: dict[str, Any] = dict.fromkeys(self.profile_value_types)
        store.users.add(_user(2, **flipped))
        for n, expected in ((1, self.profile_value_types), (2, flipped)):
            got = store.users.get(_user(n).id)
            assert got is not None
            _assert_profile(got.profile, expected)
            by_email = store.users.get_by_email(_user(n).email)
            assert by_email is not None
            _assert_profile(by_email.profile, expected)
        listed = {u.id: u for u in store.users.list()}
        _assert_profile(listed[_user(1).id].profile, self.profile_value_types)

    def test_user_lookup_by_email_is_exact(self, store: Store) -> None:
        store.users.add(_user(1, email="alice@example.com"))
        assert store.users.get_by_email("alice@example.com") is not None
        assert store.users.get_by_email("ALICE@example.com") is None
        assert store.users.get_by_email("alice@example.com ") is None
        assert store.users.get_by_email("nobody@example.com") is None

    def test_duplicate_email_raises_duplicate_key(self, store: Store) -> None:
        store.users.add(_user(1, email="same@example.com"))
        with pytest.raises(DuplicateKeyError):
            store.users.add(_user(2, email="same@example.com"))
        assert len(store.users.list()) == 1
        assert store.users.get(_user(2).id) is None

    def test_emails_differing_in_case_or_accent_are_distinct(self, store: Store) -> None:
        store.users.add(_user(1, email="elise@example.com"))
        store.users.add(_user(2, email="Elise@example.com"))
        store.users.add(_user(3, email="\u00e9lise@example.com"))
        got = store.users.get_by_email("\u00e9lise@example.com")
        assert got is not None and got.id == _user(3).id
        got = store.users.get_by_email("elise@example.com")
        assert got is not None and got.id == _user(1).id

    def test_unknown_user_is_none(self, store: Store) -> None:
        assert store.users.get("00000000-0000-4000-8000-999999999999") is None

    def test_user_updates_change_fields_and_report_existence(self, store: Store) -> None:
        user = _user(1)
        store.users.add(user)
        later = T0 + timedelta(minutes=1)
        assert store.users.set_password_hash(user.id, "mm1$new", later) is True
        assert store.users.set_blocked(user.id, True, later) is True
        assert store.users.set_blocked(user.id, True, later) is True  # idempotent
        assert store.users.set_email_verified(user.id, later) is True
        got = store.users.get(user.id)
        assert got is not None
        assert (got.password_hash, got.blocked, got.email_verified, got.updated_at) == ("mm1$new", True, True, later)
        missing = "00000000-0000-4000-8000-999999999999"
        assert store.users.set_password_hash(missing, "x", later) is False
        assert store.users.set_blocked(missing, True, later) is False
        assert store.users.set_email_verified(missing, later) is False

    def test_change_email_moves_the_account_to_a_free_address_only(self, store: Store) -> None:
        store.users.add(_user(1, email="old@example.com"))
        store.users.add(_user(2, email="taken@example.com"))
        later = T0 + timedelta(minutes=5)
        assert store.users.change_email(_user(1).id, "new@example.com", later) is True
        got = store.users.get(_user(1).id)
        assert got is not None
        assert (got.email, got.email_verified, got.updated_at, got.created_at) == ("new@example.com", True, later, T0)
        moved = store.users.get_by_email("new@example.com")
        assert moved is not None and moved.id == _user(1).id
        assert store.users.get_by_email("old@example.com") is None
        with pytest.raises(DuplicateKeyError):
            store.users.change_email(_user(1).id, "taken@example.com", later)
        unchanged = store.users.get(_user(1).id)
        assert unchanged is not None and unchanged.email == "new@example.com"
        other = store.users.get_by_email("taken@example.com")
        assert other is not None and other.id == _user(2).id
        assert store.users.change_email(_user(9).id, "free@example.com", later) is False
        assert store.users.get_by_email("free@example.com") is None
        assert store.users.change_email(_user(1).id, "new@example.com", later) is True  # its own address: no conflict
        store.users.add(_user(3, email="old@example.com"))  # the old address is free

    def test_parallel_changes_of_two_users_to_one_address_have_one_winner(self, store: Store) -> None:
        for r in range(self.race_rounds):
            for i in range(self.race_threads):
                store.users.add(_user(1000 + r * self.race_threads + i))

        def change(r: int, i: int) -> bool:
            return store.users.change_email(_user(1000 + r * self.race_threads + i).id, f"race{r}@example.com", T0)

        for r, results in enumerate(self._rounds(change)):
            won = [i for i, x in enumerate(results) if x is True]
            assert len(won) == 1, f"round {r}: {results}"
            assert all(isinstance(x, DuplicateKeyError) for i, x in enumerate(results) if i != won[0]), results
            holder = store.users.get_by_email(f"race{r}@example.com")
            assert holder is not None and holder.id == _user(1000 + r * self.race_threads + won[0]).id

    def test_delete_removes_the_user_once_and_frees_the_address(self, store: Store) -> None:
        store.users.add(_user(1, email="gone@example.com"))
        store.users.add(_user(2))
        session = _session(1, _user(1))
        store.sessions.add(session)
        assert store.users.delete(_user(1).id) is True
        assert store.users.get(_user(1).id) is None
        assert store.users.get_by_email("gone@example.com") is None
        assert store.sessions.get_with_user(session.id) is None  # the token check finds nothing
        assert store.users.delete(_user(1).id) is False
        assert store.users.delete(_user(9).id) is False
        assert [u.id for u in store.users.list()] == [_user(2).id]  # the others stay
        assert store.users.set_blocked(_user(1).id, True, T0) is False
        again = store.users.add(_user(3, email="gone@example.com"))
        assert again.id == _user(3).id
        got = store.users.get_by_email("gone@example.com")
        assert got is not None and got.id == _user(3).id

    def test_parallel_deletes_of_one_user_have_one_winner(self, store: Store) -> None:
        for r in range(self.race_rounds):
            store.users.add(_user(100 + r))
        for r, results in enumerate(self._rounds(lambda r, i: store.users.delete(_user(100 + r).id))):
            assert all(isinstance(x, bool) for x in results), results
            assert results.count(True) == 1, f"round {r}: {results.count(True)} calls deleted one user"
            assert store.users.get(_user(100 + r).id) is None

    def test_users_list_in_creation_order_with_paging(self, store: Store) -> None:
        for n in (3, 1, 2):
            store.users.add(_user(n, at=T0 + timedelta(seconds=n)))
        assert [u.id for u in store.users.list()] == [_user(n).id for n in (1, 2, 3)]
        assert [u.id for u in store.users.list(limit=1, offset=1)] == [_user(2).id]

    def test_users_list_takes_the_largest_offset_the_core_allows(self, store: Store) -> None:
        # auth.user.list lets offsets up to 2**31-1 (core/admin.py MAX_LIST_OFFSET) reach the store.
        store.users.add(_user(1))
        assert store.users.list(limit=1000, offset=2**31 - 1) == []
        assert [u.id for u in store.users.list(limit=1000, offset=0)] == [_user(1).id]

    def test_parallel_registration_of_one_email_creates_one_user(self, store: Store) -> None:
        threads = self.race_threads

        def add(r: int, i: int) -> User:
            return store.users.add(_user(1000 + r * threads + i, email=f"race{r}@example.com"))

        for r, results in enumerate(self._rounds(add)):
            assert all(isinstance(x, (User, DuplicateKeyError)) for x in results), results
            winners = [x for x in results if isinstance(x, User)]
            assert len(winners) == 1, f"round {r}: {len(winners)} users added with one email"
            stored = store.users.get_by_email(f"race{r}@example.com")
            assert stored is not None and stored.id == winners[0].id
            losers = [_user(1000 + r * threads + i).id for i, x in enumerate(results) if not isinstance(x, User)]
            assert all(store.users.get(uid) is None for uid in losers), f"round {r}: a refused user was stored"
