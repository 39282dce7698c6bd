"""Email canonicalization through email-validator.

NFKC first, then validation (no display names, no quoted local parts, no
domain literals, no deliverability lookups); the canonical form is the
normalized address with its local part lowercased. Valid addresses are
remembered (a bounded LRU of the last 4,096): the same users sign in again and
again, and validation is a measurable part of a login step.
"""

from __future__ import annotations

import functools
import unicodedata

from email_validator import EmailNotValidError, validate_email

from ..core.errors import InvalidEmail

__all__ = ["canonicalize_email"]


@functools.lru_cache(maxsize=4096)
def canonicalize_email(value: str) -> str:
    candidate = unicodedata.normalize("NFKC", value)
    try:
        result = validate_email(
            candidate,
            check_deliverability=False,
            allow_display_name=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            test_environment=True,
        )
    except EmailNotValidError:
        raise InvalidEmail() from None
    local, _, domain = result.normalized.rpartition("@")
    canonical = f"{local.lower()}@{domain.lower()}"
    if len(canonical) > 254:
        raise InvalidEmail()
    return canonical
