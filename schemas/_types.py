"""Constrained string and timestamp types of the contracts (rules: ``healthstream.contract``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

from healthstream.contract import (
    IDENTIFIER_MAX_LENGTH,
    NAME_MAX_LENGTH,
    TEXT_PATTERN,
    parse_rfc3339,
    text_problem,
)


def _no_control_chars(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


_DOCUMENTED = {"pattern": TEXT_PATTERN}
Identifier = Annotated[
    str,
    Field(min_length=1, max_length=IDENTIFIER_MAX_LENGTH, json_schema_extra=_DOCUMENTED),
    AfterValidator(_no_control_chars),
]
EventName = Annotated[
    str,
    Field(min_length=1, max_length=NAME_MAX_LENGTH, json_schema_extra=_DOCUMENTED),
    AfterValidator(_no_control_chars),
]
Timestamp = Annotated[datetime, BeforeValidator(parse_rfc3339)]
