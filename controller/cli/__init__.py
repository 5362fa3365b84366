"""The ``levctl`` command line: one module per command group; each builds objects and calls library code."""

from controller.cli.main import cli, main

__all__ = ["cli", "main"]
