"""The rules end to end, through the facade, on the store under test.

The race cases here give every rate limit that is not under test a roomy
budget (:func:`_roomy_config`), so ``race_threads`` can be raised freely.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from ...adapters.mail import Outbox
from ...core.config import AuthConfig, Limit
from ...core.errors import InvalidCredentials, InvalidOtp, InvalidRefreshToken, InvalidResetToken, InvalidToken, RateLimited
from ...core.models import LoginResult
from ...core.ports import Store
from ...facade import MindmeshAuth
from ..clock import FakeClock
from ..config import test_config
from ._support import PASSWORD, T0, StoreFixtures, _assert_profile

__all__ = ["FacadeFlowContract"]

T = TypeVar("T")
_ROOMY = Limit(1_000_000, timedelta(hours=1))
_LIMITS = (
    "otp_send_limit",
    "otp_account_failure_limit",
    "login_ip_limit",
    "login_email_limit",
    "register_ip_limit",
    "reset_email_limit",
    "reset_ip_limit",
)


def _roomy_config(**overrides: Any) -> AuthConfig:
    """:func:`test_config` with every rate limit roomy, except those given."""
    values: dict[str, Any] = dict.fromkeys(_LIMITS, _ROOMY)
    values.update(overrides)
    return test_config(**values)


class FacadeFlowContract(StoreFixtures):
    """Whole flows through :class:`~mindmesh_auth.MindmeshAuth` on this store: login,
    refresh, logout, reuse detection, blocking, password reset, purges, and the
    races a web app sees (parallel codes, refreshes, sends, resets), each with a
    fresh account per round (``flow_race_rounds``)."""

    def _logged_in(self, auth: MindmeshAuth, outbox: Outbox, email: str = "ada@example.com") -> LoginResult:
        auth.auth.register(email, PASSWORD)
        auth.auth.login(email, PASSWORD)
        return auth.auth.verify_otp(email, outbox.last_code(email), "login")

    def _facade(self, store: Store, outbox: Outbox, clock: FakeClock, **config: Any) -> MindmeshAuth:
        return MindmeshAuth(store=store, mailer=outbox, config=_roomy_config(**config), clock=clock)

    def _flow_rounds(self, setup: Callable[[int], T], fn: Callable[[T, int], Any]) -> list[tuple[T, list[Any]]]:
        """``setup(round)`` for every round first, then the race of each round on its own context."""
        contexts = [setup(r) for r in range(self.flow_race_rounds)]
        results = self._rounds(lambda r, i: fn(contexts[r], i), rounds=self.flow_race_rounds)
        return list(zip(contexts, results, strict=True))

    # -- flows ------------------------------------------------------------------------
    def test_whole_flow_on_this_store(self, auth: MindmeshAuth, outbox: Outbox) -> None:
        user = auth.auth.register("Ada@Example.com", PASSWORD, **self.profile_fields)
        assert user.email == "ada@example.com"
        _assert_profile(user.profile, self.profile_fields)
        _assert_profile(auth.user.get_by_id(user.id).profile, self.profile_fields)
        assert auth.auth.login("ada@example.com", PASSWORD).otp_required is True
        result = auth.auth.verify_otp("ada@example.com", outbox.last_code("ada@example.com"), "login")
        assert auth.auth.get_user_from_token(result.access_token).id == user.id
        pair = auth.auth.refresh(result.refresh_token)
        assert auth.auth.get_user_from_token(pair.access_token).id == user.id
        assert auth.auth.logout(pair.session_id) is True
        assert auth.auth.logout(pair.session_id) is False
        with pytest.raises(InvalidToken):
            auth.auth.get_user_from_token(pair.access_token)
        with pytest.raises(InvalidRefreshToken):
            auth.auth.refresh(pair.refresh_token)

    def test_the_longest_valid_address_works_on_every_path(self, auth: MindmeshAuth, outbox: Outbox) -> None:
        # 254 characters: 64 in the local part, the rest in the domain. Every counter named
        # after it (login, code, send, reset budgets) must fit the store's key.
        email = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"
        assert len(email) == 254
        user = auth.auth.register(email, PASSWORD)
        auth.auth.login(email, PASSWORD)
        result = auth.auth.verify_otp(email, outbox.last_code(email), "login")
        assert auth.auth.get_user_from_token(result.access_token).id == user.id
        auth.otp.send(email, "email_verify")
        assert auth.otp.verify(email, outbox.last_code(email), "email_verify") is True
        auth.password.request_reset(email)
        auth.wait_for_background_work()
        assert outbox.last_reset_token(email)
        with pytest.raises(InvalidCredentials):
            auth.auth.login(email, "a wrong password here")

    def test_replayed_refresh_token_revokes_the_session(
        self, auth: MindmeshAuth, outbox: Outbox, clock: FakeClock, store: Store
    ) -> None:
        login = self._logged_in(auth, outbox)
        pair = auth.auth.refresh(login.refresh_token)
        clock.advance(seconds=30)
        with pytest.raises(InvalidRefreshToken) as caught:
            auth.auth.refresh(login.refresh_token)
        assert caught.value.code == "refresh_token_reused"
        session = store.sessions.get(login.session_id)
        assert session is not None and session.revoked_at is not None
        with pytest.raises(InvalidToken):
            auth.auth.get_user_from_token(pair.access_token)
        with pytest.raises(InvalidRefreshToken):
            auth.auth.refresh(pair.refresh_token)

    def test_blocking_revokes_every_session_at_once(self, auth: MindmeshAuth, outbox: Outbox) -> None:
        login = self._logged_in(auth, outbox)
        auth.user.block(login.user.id)
        with pytest.raises(InvalidToken):
            auth.auth.get_user_from_token(login.access_token)
        with pytest.raises(InvalidRefreshToken):
            auth.auth.refresh(login.refresh_token)
        assert auth.sessions.list(login.user.id) == []

    def test_purge_expired_drains_every_table_in_batches(self, auth: MindmeshAuth, outbox: Outbox, clock: FakeClock) -> None:
        for n in range(5):
            self._logged_in(auth, outbox, f"user{n}@example.com")
        clock.advance(days=8)
        counts = auth.purge_expired(batch_size=2)
        assert counts["sessions"] == 5
        assert counts["otp_challenges"] == 5
        assert auth.purge_expired(batch_size=2) == {"sessions": 0, "otp_challenges": 0, "reset_tokens": 0, "rate_limits": 0}

    # -- races through the facade -----------------------------------------------------------
    def test_parallel_wrong_codes_count_at_most_max_attempts(self, store: Store, outbox: Outbox, clock: FakeClock) -> None:
        auth = self._facade(store, outbox, clock)  # only the per-code cap is under test
        cap = auth.config.otp_max_attempts

        def setup(r: int) -> tuple[str, str, str | None]:
            email = f"wrong{r}@example.com"
            auth.auth.register(email, PASSWORD)
            handle = auth.auth.login(email, PASSWORD).handle
            return email, outbox.last_code(email), handle

        def wrong(ctx: tuple[str, str, str | None], i: int) -> Any:
            email, right, handle = ctx  # bound submissions (the login's handle) spend the code's attempts
            return auth.auth.verify_otp(email, f"{(int(right) + 1) % 1_000_000:06d}", "login", handle=handle)

        for (email, right, handle), results in self._flow_rounds(setup, wrong):
            assert all(isinstance(x, InvalidOtp) for x in results), results
            challenge = store.otps.get(email, "login")
            assert challenge is not None and challenge.attempts == min(cap, self.race_threads), email
            if self.race_threads >= cap:
                with pytest.raises(InvalidOtp):  # the code is dead, even when right
                    auth.auth.verify_otp(email, right, "login", handle=handle)

    def test_parallel_unbound_wrong_codes_never_spend_the_codes_attempts(
        self, store: Store, outbox: Outbox, clock: FakeClock
    ) -> None:
        auth = self._facade(store, outbox, clock)

        def setup(r: int) -> tuple[str, str, str | None]:
            email = f"unbound{r}@example.com"
            auth.auth.register(email, PASSWORD)
            handle = auth.auth.login(email, PASSWORD).handle
            return email, outbox.last_code(email), handle

        def wrong(ctx: tuple[str, str, str | None], i: int) -> Any:
            email, right, _ = ctx  # a stranger: the address only, no handle
            return auth.auth.verify_otp(email, f"{(int(right) + 1) % 1_000_000:06d}", "login")

        for (email, right, handle), results in self._flow_rounds(setup, wrong):
            assert all(isinstance(x, (InvalidOtp, RateLimited)) for x in results), results
            challenge = store.otps.get(email, "login")
            assert challenge is not None and challenge.attempts == 0, email
            assert auth.auth.verify_otp(email, right, "login", handle=handle).user.email == email

    def test_parallel_correct_codes_open_one_session(self, store: Store, outbox: Outbox, clock: FakeClock) -> None:
        auth = self._facade(store, outbox, clock)

        def setup(r: int) -> tuple[str, str, str]:
            email = f"right{r}@example.com"
            user = auth.auth.register(email, PASSWORD)
            auth.auth.login(email, PASSWORD)
            return email, outbox.last_code(email), user.id

        def verify(ctx: tuple[str, str, str], i: int) -> Any:
            return auth.auth.verify_otp(ctx[0], ctx[1], "login")

        for (email, _code, user_id), results in self._flow_rounds(setup, verify):
            winners = [x for x in results if not isinstance(x, BaseException)]
            assert len(winners) == 1, f"{email}: {len(winners)} sessions opened with one code: {results}"
            assert all(isinstance(x, InvalidOtp) for x in results if isinstance(x, BaseException)), results
            assert len(store.sessions.list_for_user(user_id, now=T0 + timedelta(seconds=1))) == 1

    def test_parallel_refreshes_leave_one_live_successor(self, store: Store, outbox: Outbox, clock: FakeClock) -> None:
        auth = self._facade(store, outbox, clock)

        def refresh(login: LoginResult, i: int) -> Any:
            return auth.auth.refresh(login.refresh_token)

        for login, results in self._flow_rounds(lambda r: self._logged_in(auth, outbox, f"refresh{r}@example.com"), refresh):
            pairs = [x for x in results if not isinstance(x, BaseException)]
            assert len(pairs) == 1, results
            assert all(isinstance(x, InvalidRefreshToken) for x in results if isinstance(x, BaseException)), results
            session = store.sessions.get(login.session_id)
            assert session is not None and session.revoked_at is None
            assert auth.auth.get_user_from_token(pairs[0].access_token).id == login.user.id
            assert auth.auth.refresh(pairs[0].refresh_token).session_id == login.session_id

    def test_parallel_refreshes_in_grace_period_share_one_successor(
        self, store: Store, outbox: Outbox, clock: FakeClock
    ) -> None:
        auth = self._facade(store, outbox, clock, refresh_grace_period=timedelta(seconds=10))

        def refresh(login: LoginResult, i: int) -> Any:
            return auth.auth.refresh(login.refresh_token)

        for login, results in self._flow_rounds(lambda r: self._logged_in(auth, outbox, f"grace{r}@example.com"), refresh):
            assert not any(isinstance(x, BaseException) for x in results), results
            assert len({x.refresh_token for x in results}) == 1
            session = store.sessions.get(login.session_id)
            assert session is not None and session.revoked_at is None

    def test_parallel_otp_sends_stop_at_the_send_limit(self, store: Store, outbox: Outbox, clock: FakeClock) -> None:
        limit = 3
        auth = self._facade(store, outbox, clock, otp_send_limit=Limit(limit, timedelta(minutes=10)))

        def setup(r: int) -> str:
            email = f"send{r}@example.com"
            auth.auth.register(email, PASSWORD)
            return email

        for email, results in self._flow_rounds(setup, lambda email, i: auth.otp.send(email, "email_verify")):
            sent = min(limit, self.race_threads)
            assert len(outbox.for_address(email, "otp")) == sent, email
            assert sum(isinstance(x, RateLimited) for x in results) == self.race_threads - sent, results

    def test_password_reset_revokes_sessions_and_is_one_time(self, store: Store, outbox: Outbox, clock: FakeClock) -> None:
        auth = self._facade(store, outbox, clock)

        def setup(r: int) -> tuple[LoginResult, str]:
            email = f"reset{r}@example.com"
            login = self._logged_in(auth, outbox, email)
            auth.password.request_reset(email)
            return login, outbox.last_reset_token(email)

        def reset(ctx: tuple[LoginResult, str], i: int) -> Any:
            return auth.password.reset(ctx[1], f"brand new password {i}")

        for (login, _token), results in self._flow_rounds(setup, reset):
            assert sum(x is None for x in results) == 1, results
            assert all(isinstance(x, InvalidResetToken) for x in results if x is not None), results
            with pytest.raises(InvalidToken):
                auth.auth.get_user_from_token(login.access_token)
            assert auth.sessions.list(login.user.id) == []
