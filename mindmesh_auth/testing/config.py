from __future__ import annotations

from typing import Any

from ..core.config import AuthConfig

__all__ = ["test_config"]


def test_config(**overrides: Any) -> AuthConfig:
    """A valid config for tests: fixed secrets, bcrypt cost 4, mail sent inline."""
    values: dict[str, Any] = {
        "jwt_secret": "test-jwt-secret-" + "j" * 32,
        "refresh_secret": "test-refresh-secret-" + "r" * 32,
        "bcrypt_rounds": 4,
        "reset_delivery_in_background": False,
    }
    values.update(overrides)
    return AuthConfig(**values)


test_config.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
