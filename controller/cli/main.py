"""The ``levctl`` command group: each command is imported from its module on first use.

A command pays for the libraries it uses and no others: ``levctl log`` reads SQLite and prints a
table without loading numpy, pydantic, ccxt or matplotlib (``tests/test_architecture.py`` holds it).
"""

from __future__ import annotations

import importlib

import click

COMMANDS = {  # name → "module:attribute", in the order ``levctl --help`` lists them
    "run": "controller.cli.run:run",
    "once": "controller.cli.run:once",
    "log": "controller.cli.log:log_command",
    "report": "controller.cli.report:report",
    "replay": "controller.cli.replay:replay_command",
    "calibrate": "controller.cli.calibrate:calibrate_command",
    "config": "controller.cli.run:config_group",
    "sim": "controller.cli.sim:sim",
    "book": "controller.cli.pricing:book",
    "greeks": "controller.cli.pricing:greeks_command",
    "iv": "controller.cli.pricing:iv_command",
}


class LazyGroup(click.Group):
    """A group whose commands are named here and imported when asked for."""

    def __init__(self, *args: object, lazy: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.lazy, *(name for name in super().list_commands(ctx) if name not in self.lazy)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        module, attribute = self.lazy[cmd_name].split(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
        return command


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="levctl", prog_name="levctl")
def cli() -> None:
    """levctl: options greeks and volatility-scaled leverage control for crypto derivatives."""


def main() -> None:
    cli(prog_name="levctl")
