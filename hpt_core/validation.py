"""Strict pydantic models and their errors as `Problem`s, shared by every part of the experiment file.

`StrictModel` is the base of each section (and of each hyperparameter's spec); `validate` runs
one and turns a pydantic `ValidationError` into `Problem`s that name the dotted path, the value
and what is allowed, with "did you mean" for a misspelt field.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Annotated, Any, Mapping, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError

from hpt_core.errors import Problem
from hpt_core.habits import field_hint

INT64_MAX = 2**63 - 1


def whole_float_to_int(value: Any) -> Any:
    """A float without a fraction (e.g. `3.0` or `1e3`) is accepted where an int is expected."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= INT64_MAX:
        return int(value)
    return value


StrictInt = Annotated[int, BeforeValidator(whole_float_to_int), Strict(), Field(ge=-INT64_MAX, le=INT64_MAX)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
StrictFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
StrictStr = Annotated[str, Strict()]
StrictBool = Annotated[bool, Strict()]
Fraction = Annotated[StrictFloat, Field(ge=0.0, le=1.0)]


class StrictModel(BaseModel):
    """Base of every config section: strict types, unknown fields are errors, frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


def validate(
    model: type[StrictModel], data: Mapping[str, Any], path: str, problems: list[Problem],
    extra_allowed: tuple[str, ...] = (),
) -> Any:
    """`data` validated by `model`, or None with its problems (prefixed by `path`) added to `problems`."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as error:
        problems.extend(problems_from_validation(error, path, model, extra_allowed))
        return None


def problems_from_validation(
    error: ValidationError, prefix: str, model: type[BaseModel], extra_allowed: tuple[str, ...] = ()
) -> list[Problem]:
    """One `Problem` per pydantic error, its path under `prefix`.

    `extra_allowed` are top-level names that other code validates (listed as allowed all the same).
    """
    problems = []
    for detail in error.errors(include_url=False):
        location = [str(part) for part in detail["loc"] if not _is_validator_tag(part)]
        path = ".".join([prefix, *location] if prefix else location)
        kind = detail["type"]
        if kind == "extra_forbidden":
            allowed = sorted(set(_fields_at(model, location[:-1])) | set(extra_allowed if len(location) == 1 else ()))
            hint = field_hint(location[-1], detail.get("input")) or did_you_mean(location[-1], allowed)
            message = f"unknown field; allowed: {', '.join(allowed)}" + hint
            problems.append(Problem(path, message))
        elif kind == "missing":
            problems.append(Problem(path, "required field is missing"))
        elif kind == "value_error":
            problems.append(Problem(path, str(detail["msg"]).removeprefix("Value error, "), detail.get("input")))
        else:
            problems.append(Problem(path, _allowed_message(detail), detail.get("input")))
    return problems


def did_you_mean(given: Any, allowed: Any) -> str:
    """`"; did you mean 'x'?"` naming the allowed name closest to `given`, or "" if none is close."""
    if not isinstance(given, str):
        return ""
    close = difflib.get_close_matches(given, list(allowed), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _allowed_message(detail: Mapping[str, Any]) -> str:
    given = detail.get("input")
    if detail["type"] == "float_type" and isinstance(given, int) and not isinstance(given, bool):
        return "must be a number within the range of a float (about ±1.8e308)"
    message = str(detail["msg"])
    replacements = {
        "Input should be a valid integer": "must be an integer (not a bool, string or float with a fraction)",
        "Input should be a valid number": "must be a number (not a bool or string)",
        "Input should be a finite number": "must be a finite number",
        "Input should be a valid string": "must be a string",
        "Input should be a valid boolean": "must be true or false",
        "Input should be a valid dictionary": "must be a mapping",
        "Input should be a valid list": "must be a list",
        "Input should be": "must be",
    }
    for before, after in replacements.items():
        if message.startswith(before):
            return after + message[len(before):]
    return message


def _is_validator_tag(part: Any) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _fields_at(model: type[BaseModel], location: list[str]) -> list[str]:
    """Names of the fields allowed at `location` inside `model` (following nested models)."""
    current: Any = model
    for part in location:
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return []
        current = _nested_model(current.model_fields[part].annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [field.alias or name for name, field in current.model_fields.items()]
    return []


def _nested_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType, Annotated):
        for argument in typing.get_args(annotation):
            found = _nested_model(argument)
            if found is not None:
                return found
    return None
