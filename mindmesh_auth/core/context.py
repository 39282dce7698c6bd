"""Request context (client IP, user agent), per thread and per asyncio task."""

from __future__ import annotations

import contextvars
import ipaddress

from .errors import ValidationError
from .models import RequestContext

__all__ = ["current_context", "ip_bucket", "normalize_ip", "resolve_context", "set_context"]

_CONTEXT: contextvars.ContextVar[RequestContext] = contextvars.ContextVar(
    "mindmesh_auth_context",
    default=RequestContext(),  # noqa: B039 - frozen, immutable
)
_MAX_UA = 512


def normalize_ip(value: object) -> str | None:
    """Parse an IP address; IPv4-mapped IPv6 becomes IPv4. ``ValidationError`` if malformed."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise ValidationError("ip_address must be an IP address string.", field="ip_address")
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValidationError("ip_address is not a valid IP address.", field="ip_address") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def ip_bucket(ip: str) -> str:
    """The rate-limit key of an IP: the address for IPv4, its /64 for IPv6."""
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return ip


def _clean_user_agent(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationError("user_agent must be a string.", field="user_agent")
    return value[:_MAX_UA]


def make_context(ip_address: object = None, user_agent: object = None) -> RequestContext:
    return RequestContext(ip_address=normalize_ip(ip_address), user_agent=_clean_user_agent(user_agent))


def set_context(ip_address: object = None, user_agent: object = None) -> contextvars.Token[RequestContext]:
    """Set the context for the current thread or task; returns a token for ``reset``."""
    return _CONTEXT.set(make_context(ip_address, user_agent))


def reset_context(token: contextvars.Token[RequestContext]) -> None:
    _CONTEXT.reset(token)


def current_context() -> RequestContext:
    return _CONTEXT.get()


def resolve_context(explicit: RequestContext | None) -> RequestContext:
    """A per-call context wins over the one set with ``set_context``."""
    if explicit is None:
        return _CONTEXT.get()
    if not isinstance(explicit, RequestContext):
        raise ValidationError("context must be a RequestContext.", field="context")
    return make_context(explicit.ip_address, explicit.user_agent)
