"""Command-line parameter types shared by several commands."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from controller.review.logdb import parse_instant


class InstantType(click.ParamType):
    """A time as an instant: ISO 8601 (an offset, or none for UTC), a bare date, or ``6h``/``2d`` ago."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_instant(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


INSTANT = InstantType()
