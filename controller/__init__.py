"""levctl controller: everything that talks to the world (config, venues, risk, policy, loop, log, CLI)."""

from typing import Any


def __getattr__(name: str) -> Any:
    """``__version__``, read from the installed metadata on first use (importing the package stays cheap)."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("levctl")
    except PackageNotFoundError:  # running from a source tree that is not installed
        value = "0.0.0+unknown"
    globals()["__version__"] = value
    return value
