"""Email canonicalization through email-validator.

NFKC first, then validation (no display names, no quoted local parts, no
domain literals, no deliverability lookups); the canonical form is the
normalized address with its local part lowercased. Special-use domains
(``.test``, ``.invalid``, ``.localhost``, ``.local``, ``.onion``, ``.arpa``)
are refused; :func:`email_canonicalizer` with ``allow_test_domains=True``
(``AuthConfig.allow_test_email_domains``, tests only) accepts ``.test``.
Valid addresses are remembered (a bounded LRU of the last 4,096, keyed on the
address and the test-domain allowance): the same users sign in again and
again, and validation is a measurable part of a login step.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable

from email_validator import EmailNotValidError, validate_email

from ..core.errors import InvalidEmail

__all__ = ["canonicalize_email", "canonicalize_test_email", "email_canonicalizer"]


@functools.lru_cache(maxsize=4096)
def _canonicalize(value: str, allow_test_domains: bool) -> str:
    candidate = unicodedata.normalize("NFKC", value)
    try:
        result = validate_email(
            candidate,
            check_deliverability=False,
            allow_display_name=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            test_environment=allow_test_domains,
        )
    except EmailNotValidError:
        raise InvalidEmail() from None
    local, _, domain = result.normalized.rpartition("@")
    canonical = f"{local.lower()}@{domain.lower()}"
    if len(canonical) > 254:
        raise InvalidEmail()
    return canonical


def canonicalize_email(value: str) -> str:
    """The canonical form of ``value`` for production: special-use domains are refused."""
    return _canonicalize(value, False)


def canonicalize_test_email(value: str) -> str:
    """As :func:`canonicalize_email`, but ``.test`` addresses (RFC 6761) are accepted."""
    return _canonicalize(value, True)


def email_canonicalizer(*, allow_test_domains: bool = False) -> Callable[[str], str]:
    """The canonicalizer for a config's ``allow_test_email_domains``."""
    return canonicalize_test_email if allow_test_domains else canonicalize_email
