"""Reading stored JSON back into today's records. A stored result was written by whatever version of
pledgescan ran then: fields a later model dropped are ignored (the models themselves forbid unknown
fields, which is right for new data) and fields it added take their defaults. A change that cannot be
read this way (a field renamed or made required) comes with an Alembic revision rewriting the stored
rows (see ``scanner.migrations``)."""

from __future__ import annotations

import functools
import types
import typing
from typing import Any

from pydantic import BaseModel

from scanner.models import TargetResult


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The record type inside ``X``, ``X | None`` or ``tuple[X, ...]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (tuple, list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


@functools.cache
def _fields(model: type[BaseModel]) -> tuple[tuple[str, type[BaseModel] | None], ...]:
    """``model``'s fields with the record type inside each (worked out once per model, not per row)."""
    return tuple((name, _model_of(info.annotation)) for name, info in model.model_fields.items())


def known_fields(model: type[BaseModel], data: Any) -> Any:
    """``data`` with, at every level, only the keys ``model`` (and its nested records) declare."""
    if isinstance(data, list):
        return [known_fields(model, d) for d in data]
    if not isinstance(data, dict):
        return data
    out = {}
    for name, inner in _fields(model):
        if name in data:
            out[name] = known_fields(inner, data[name]) if inner is not None else data[name]
    return out


def load_result(data: dict[str, Any]) -> TargetResult:
    """A stored ``TargetResult`` (JSON mode), written by this or an earlier version."""
    return TargetResult.model_validate(known_fields(TargetResult, data))
