"""What every section of the configuration shares: strict models and their number types."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


class ConfigError(ValueError):
    """The configuration is unusable; the message names the file, key path and rule."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
