"""Loading YAML cards into frozen, typed records with readable errors.

A malformed card fails with one :class:`CardError` naming the file, every bad
field, the bad value, the allowed values and a "did you mean" suggestion.
"""

from __future__ import annotations

import enum
import os
import typing
from pathlib import Path
from typing import Any, TypeVar

import pydantic

from heldout.errors import CardError, did_you_mean

Card = TypeVar("Card", bound="FrozenRecord")


class FrozenRecord(pydantic.BaseModel):
    """Base of every card and lock: immutable, no unknown keys, validated on load."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def _allowed_for(model: type[pydantic.BaseModel], loc: tuple) -> list[str]:
    """Allowed values (enum members, literals, or field names) at ``loc`` in ``model``."""
    current: Any = model
    for i, part in enumerate(loc):
        if isinstance(part, int) or current is None:
            continue
        if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return list(current.model_fields) if i == len(loc) - 1 else []
            current = field.annotation
        current = _unwrap(current)
    return _choices(current)


def _unwrap(tp: Any) -> Any:
    for arg in typing.get_args(tp) or ():
        if isinstance(arg, type) and (issubclass(arg, pydantic.BaseModel | enum.Enum)):
            return arg
    return tp


def _choices(tp: Any) -> list[str]:
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return [str(m.value) for m in tp]
    if typing.get_origin(tp) is typing.Literal:
        return [str(a) for a in typing.get_args(tp)]
    for arg in typing.get_args(tp):
        if typing.get_origin(arg) is typing.Literal or (isinstance(arg, type) and issubclass(arg, enum.Enum)):
            return _choices(arg)
    return []


def format_validation_error(path: Path | str, model: type[pydantic.BaseModel], exc: pydantic.ValidationError) -> str:
    lines = [f"Invalid {model.__name__} in {path}:"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        where = ".".join(str(p) for p in loc) or "(top level)"
        bad = err.get("input")
        if err["type"] == "extra_forbidden":
            parent = _allowed_for(model, (*loc[:-1], "__field__")) if len(loc) > 1 else list(model.model_fields)
            allowed = parent or list(model.model_fields)
            lines.append(f"  - {where}: unknown field. Allowed fields: {', '.join(allowed)}."
                         f"{did_you_mean(str(loc[-1]), allowed)}")
            continue
        allowed = _allowed_for(model, loc)
        text = f"  - {where}: {err['msg']} (got {bad!r})" if err["type"] != "missing" else f"  - {where}: required field is missing"
        if allowed:
            text += f". Allowed: {', '.join(repr(a) for a in allowed)}.{did_you_mean(str(bad), allowed)}"
        lines.append(text)
    return "\n".join(lines)


def load_card(path: str | Path, model: type[Card], *, inside: Path | None = None) -> Card:
    """Read a YAML file and validate it as ``model``; raise :class:`CardError` on any problem.

    ``inside``: the folder the card must stay in (a registry's): the file, after every symlink, must be a
    regular file there (see heldout.untrusted.paths). YAML is read bounded, without duplicate keys.
    """
    from heldout.untrusted.limits import limits
    from heldout.untrusted.paths import regular_file, resolve_inside
    from heldout.untrusted.yaml_input import read_yaml_file

    path = Path(path)
    real = path
    if inside is not None:  # lexical: nothing outside ``inside`` is looked at
        real = resolve_inside(inside, os.path.relpath(os.path.abspath(path), os.path.abspath(inside)), "card file")
    if not real.exists():
        msg = f"Card file {path} does not exist."
        raise CardError(msg)
    regular_file(real, "card file", limits().yaml_bytes)
    data = read_yaml_file(real)
    if not isinstance(data, dict):
        msg = f"{path} must hold a YAML mapping (key: value lines), got {type(data).__name__}."
        raise CardError(msg)
    return parse_card(data, model, source=path)


def parse_card(data: dict, model: type[Card], *, source: Path | str = "<memory>") -> Card:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise CardError(format_validation_error(source, model, exc),
                        hint="Fix the fields listed above; see CONTRIBUTING.md for the card format.") from None
