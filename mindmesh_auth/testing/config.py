from __future__ import annotations

from typing import Any

from ..core.config import AuthConfig

__all__ = ["test_config"]


def test_config(**overrides: Any) -> AuthConfig:
    """A valid config for tests: fixed secrets, bcrypt cost 4, mail sent inline, ``.test`` addresses accepted."""
    values: dict[str, Any] = {
        # Fixed (tests are reproducible) and random-looking, so they pass the secret checks;
        # never use them outside tests.
        "jwt_secret": "tc-jwt-Hq7wN2pVx9LkR4mZ8cT3bF6sD1gJyE5u",
        "refresh_secret": "tc-rfr-Ub3Kd8YsW0aMe5Qj1Xn6Po9Gv2Ci7Ht4",
        "bcrypt_rounds": 4,
        "reset_delivery_in_background": False,
        "otp_delivery_in_background": False,
        "allow_test_email_domains": True,  # tests use addresses at example.test
        "hash_queue_limit": 10_000,  # race tests send many threads through cheap (cost 4) hashes at once
    }
    values.update(overrides)
    return AuthConfig(**values)


test_config.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
