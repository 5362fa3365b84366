"""The ``levctl`` command group: the commands of each module, under one name."""

from __future__ import annotations

import click

from controller import __version__
from controller.cli.pricing import book, greeks_command, iv_command
from controller.cli.replay import replay_command
from controller.cli.report import report
from controller.cli.run import config_group, log_command, once, run
from controller.cli.sim import sim


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="levctl")
def cli() -> None:
    """levctl: options greeks and volatility-scaled leverage control for crypto derivatives."""


for command in (
    run,
    once,
    log_command,
    report,
    replay_command,
    config_group,
    sim,
    book,
    greeks_command,
    iv_command,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="levctl")
