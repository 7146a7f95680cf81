"""Dotted paths into a config and overrides: what ``Scenario.set`` / ``set_many`` and ``--set
PATH=VALUE`` go through, and ``parse_distribution`` for a lone distribution.

``_assign(raw, parts, value, root)`` sets one dotted path in a raw config dict, checking every key
against the model types under ``root`` (not the raw dict, which may lack defaulted keys), so a bad
path is reported before any validation; the models validate the result afterwards.

Where it sits: above mcexplore.scenario.types, .distributions, .notes and .errors; below the
models (which pass themselves as ``root``) and the file loading.
"""

import tomllib
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from .distributions import _Dist, _OneDist, _tag
from .errors import _classify, _format_errors, _section, _show
from .notes import Note, _strip_notes
from .types import ScenarioError


def _split_path(path: str) -> list[str]:
    parts = [p.strip() for p in str(path).strip().split(".")]
    if not parts or any(not p for p in parts):
        raise ScenarioError(f"{path!r} is not a valid path: write dotted keys, e.g. page.mapcount")
    return parts


def _to_plain(value):
    """A value in config form: models by their to_config(), numpy scalars as Python numbers."""
    if isinstance(value, Note):
        return value.model_dump()
    if isinstance(value, BaseModel):
        if hasattr(value, "to_config"):
            return value.to_config()
        # a Scenario (it has to_dict, not to_config) or some other model that no field holds
        raise ScenarioError(f"cannot set a field to a whole {type(value).__name__.lower()}")
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _assign(raw: dict, parts: list[str], value, root: type[BaseModel]) -> None:
    """Set raw[parts...] = value, checking each key against the models under ``root`` (not the
    raw dict, which may lack defaulted keys)."""
    tp: Any = root
    node: Any = raw
    for i, part in enumerate(parts):
        where = ".".join(parts[:i])
        last = i == len(parts) - 1
        kind, info = _classify(tp) if tp is not None else ("other", None)
        if kind == "union":  # a distribution: its table says which kind
            member = info.get(_tag(node)) if node is not None else None
            kind, info = _classify(member) if member is not None else ("other", None)
        if kind == "model":
            if part not in info.model_fields:
                raise ScenarioError(f"{'.'.join(parts)}: unknown key {part!r} in {_section(parts[:i])} "
                                    f"(valid keys: {', '.join(info.model_fields)})")
            if last:
                node[part] = value
                return
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            tp, node = info.model_fields[part].annotation, child
        elif isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ScenarioError(f"{'.'.join(parts)}: {part!r} is not an index of {where} "
                                    f"(0 to {len(node) - 1})")
            if last:
                node[int(part)] = value
                return
            tp, node = (info if kind == "list" else None), node[int(part)]
        else:
            raise ScenarioError(f"{'.'.join(parts)}: {where} is {_show(node)}, not a table; "
                                f"set {where} itself")


def parse_override(text: str) -> tuple[str, Any]:
    """'page.mapcount=2' -> ('page.mapcount', 2); the value is TOML if it parses, else a string."""
    if "=" not in text:
        raise ScenarioError(f"override {text!r} is not valid: write PATH=VALUE, e.g. page.mapcount=2")
    path, _, value = text.partition("=")
    path, value = path.strip(), value.strip()
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return path, parsed


def parse_distribution(value) -> _Dist:
    """A distribution from its config form ("1us", {dist = "exp", mean = "30us"}, ...)."""
    errors: list[str] = []
    clean = {"value": _strip_notes(value, ["value"], {}, errors)}
    if errors:
        raise ScenarioError(errors)
    try:
        return _OneDist.model_validate(clean).value
    except ValidationError as e:
        raise ScenarioError(_format_errors(e, _OneDist)) from None
