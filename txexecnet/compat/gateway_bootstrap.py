"""Where execnet keeps L{HostNotFound}."""

from __future__ import annotations

from ..errors import GatewayStartError

__all__ = ["HostNotFound"]


class HostNotFound(GatewayStartError):
    """An ssh or socket gateway could not reach its host."""
