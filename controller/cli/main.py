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
    "serve": "controller.cli.serve:serve",
    "replay": "controller.cli.replay:replay_command",
    "calibrate": "controller.cli.calibrate:calibrate_command",
    "config": "controller.cli.run:config_group",
    "doctor": "controller.cli.doctor:doctor",
    "sim": "controller.cli.sim:sim",
    "book": "controller.cli.pricing:book",
    "greeks": "controller.cli.pricing:greeks_command",
    "iv": "controller.cli.pricing:iv_command",
}


WORKFLOW = (  # how ``levctl --help`` groups the commands: by what a person is doing
    ("Run (trade, or advise, on an account or the simulator)", ("run", "once", "config", "doctor")),
    ("Watch (while it runs)", ("serve", "log")),
    ("Review (after the fact)", ("report",)),
    ("Research (market history)", ("replay", "calibrate")),
    ("Tools (no account, no decision log)", ("sim", "book", "greeks", "iv")),
)


class LazyGroup(click.Group):
    """A group whose commands are named here and imported when asked for."""

    def __init__(self, *args: object, lazy: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.lazy, *(name for name in super().list_commands(ctx) if name not in self.lazy)]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """One section per workflow, each command with its whole first sentence (not cut at 45 characters)."""
        grouped = [name for _, names in WORKFLOW for name in names]
        sections = [*WORKFLOW, ("Other", tuple(n for n in self.list_commands(ctx) if n not in grouped))]
        width = max(len(name) for name in self.list_commands(ctx))
        for title, names in sections:
            rows = []
            for name in names:
                command = self.get_command(ctx, name)
                if command is not None and not command.hidden:  # the whole sentence, wrapped if long
                    rows.append((name.ljust(width), command.get_short_help_str(limit=1000)))
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows, col_max=width + 2)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        module, attribute = self.lazy[cmd_name].split(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
        return command


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.version_option(package_name="levctl", prog_name="levctl")
def cli() -> None:
    """levctl: options greeks and volatility-scaled leverage control for crypto derivatives.

    Start with `levctl run` (the built-in simulator: no account, no network), watch it with
    `levctl serve` or `levctl log -f`, review it with `levctl report`.  `levctl COMMAND --help` for more.
    """


def main() -> None:
    cli(prog_name="levctl")
