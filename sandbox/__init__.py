"""Local stand-ins for provider APIs (Clerk today), served by one small WSGI app on loopback.

Used by the test suite and by the local demo; see sandbox/README.md.
"""

from sandbox.app import create_app
from sandbox.server import SandboxControl, SandboxControlError, SandboxServer
from sandbox.state import SandboxState

__all__ = ["SandboxControl", "SandboxControlError", "SandboxServer", "SandboxState", "create_app"]
