"""levctl controller: everything that talks to the world (config, venues, risk, policy, loop, log, CLI)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("levctl")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
