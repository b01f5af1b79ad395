"""
The transports that carry a gateway's frames: a child process
(L{PopenTransport}), threads of this process (L{ThreadTransport}).
"""

from .popen import PopenTransport
from .thread import ThreadTransport

__all__ = ["PopenTransport", "ThreadTransport"]
