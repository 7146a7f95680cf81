"""The error rewriter: pydantic's validation errors as one line each,
"path: value is not valid: what is valid".

Every model of a config (a scenario, a lone distribution, a sweep file: mcexplore.sweep) goes
through ``_format_errors(exc, root)``, ``root`` being the model validated at the top: it walks the
error's location through the model types to show the dotted field path (union tags dropped), the
offending value and what the field accepts, lists the valid keys of a table for an unknown key,
and turns a ``FieldError`` raised by a validator into a line blaming the field it names.

Where it sits: above mcexplore.scenario.types and .distributions (it names the distribution kinds),
below the path helpers and the models; it knows no particular model.
"""

import types
import typing
from typing import Annotated, Any, Union

from pydantic import BaseModel, Tag, ValidationError

from ..units import UnitError
from .distributions import DIST_KINDS
from .types import FieldError, _MISSING


def _classify(tp):
    """('model', cls) | ('list', item) | ('union', {tag: type}) | ('other', tp)."""
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        tags = {}
        for a in args:
            if typing.get_origin(a) is Annotated:
                for m in a.__metadata__:
                    if isinstance(m, Tag):
                        tags[m.tag] = typing.get_args(a)[0]
        if tags:
            return "union", tags
        rest = [a for a in args if a is not type(None)]
        return _classify(rest[0]) if len(rest) == 1 else ("other", tp)
    if origin is list:
        return "list", typing.get_args(tp)[0]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "model", tp
    return "other", tp


def _walk(loc, root) -> tuple[list[str], Any]:
    """Display path of a pydantic loc (union tags dropped) and the type found there."""
    tp: Any = root
    shown: list[str] = []
    for part in loc:
        kind, info = _classify(tp) if tp is not None else ("other", None)
        if kind == "union" and isinstance(part, str) and part in info:
            tp = info[part]
            continue
        if kind == "list" and isinstance(part, int):
            tp = info
        elif kind == "model" and isinstance(part, str) and part in info.model_fields:
            tp = info.model_fields[part].annotation
        else:
            tp = None
        shown.append(str(part))
    return shown, tp


def _keys_of(tp) -> list[str] | None:
    kind, info = _classify(tp) if tp is not None else ("other", None)
    return list(info.model_fields) if kind == "model" else None


def _show(v, limit: int = 100) -> str:
    s = ("true" if v else "false") if isinstance(v, bool) else repr(v)
    return s if len(s) <= limit else s[:limit - 3] + "..."


def _section(shown: list[str]) -> str:
    return f"[{'.'.join(shown)}]" if shown else "the top level"


def _simple_kinds(mixture: bool) -> str:
    kinds = DIST_KINDS if mixture else DIST_KINDS[:-1]
    return ", ".join(kinds)


_COMPARISONS = (("greater than or equal to", ">="), ("less than or equal to", "<="),
                ("greater than", ">"), ("less than", "<"))


def _format_error(err: dict, root) -> str:
    loc, typ, inp = tuple(err["loc"]), err["type"], err.get("input")
    if typ == "extra_forbidden":
        shown, tp = _walk(loc[:-1], root)
        keys = _keys_of(tp)
        valid = f" (valid keys: {', '.join(keys)})" if keys else ""
        return f"unknown key {loc[-1]!r} in {_section(shown)}{valid}"
    shown, tp = _walk(loc, root)
    path = ".".join(shown) or "(config)"
    if typ == "missing":
        return f"{path}: missing: this key is required"
    if typ in ("bad_dist", "bad_component"):
        comp = typ == "bad_component"
        kinds = _simple_kinds(mixture=True)  # a mixture component may be a mixture itself
        what = "a mixture component" if comp else "a distribution"
        if isinstance(inp, dict) and "dist" in inp:
            return f"{path}.dist: {_show(inp['dist'])} is not valid: {what} must be one of {kinds}"
        if comp:
            return (f"{path}: {_show(inp)} is not valid: a mixture component is a table "
                    f"{{weight = ..., dist = one of {kinds}, ...}}")
        return (f"{path}: {_show(inp)} is not valid: a distribution is a duration such as '1us' "
                f"or a table with dist = one of {kinds} (or {{value = ..., estimate = ..., why = ...}})")
    if typ == "value_error":
        e = err.get("ctx", {}).get("error")
        if isinstance(e, FieldError):
            shown2, _ = _walk(loc + e.loc, root)
            prefix = ".".join(shown)
            refs = [f"{prefix}.{r}" if prefix else r for r in e.refs]
            reason = e.reason.format(*refs)
            p2 = ".".join(shown2)
            if e.value is _MISSING:
                return f"{p2}: missing: {reason}"
            return f"{p2}: {_show(e.value)} is not valid: {reason}"
        if isinstance(e, UnitError):
            return f"{path}: {_show(e.value)} is not valid: {e.reason}"
        reason = str(e) if e is not None else err["msg"]
        return f"{path}: {_show(inp)} is not valid: {reason}"
    msg = err["msg"]
    if typ in ("model_type", "model_attributes_type", "dict_type"):
        msg = "must be a table"
    elif msg.startswith("Input should be "):
        msg = "must be " + msg[len("Input should be "):]
        for words, sign in _COMPARISONS:
            msg = msg.replace(words, sign)
    else:
        for start in ("List should have", "Value should have", "String should have"):
            if msg.startswith(start):
                msg = "must have" + msg[len(start):]
                break
    return f"{path}: {_show(inp)} is not valid: {msg}"


def _format_errors(exc: ValidationError, root, prefix: tuple = ()) -> list[str]:
    """The lines of ``exc``, raised validating the model ``root`` (duplicates dropped).

    ``prefix``: where the validated value sits inside ``root`` when only a part of it was validated
    (the sweep's ``Axis.from_dict`` validates one ``[[axes]]`` table: ("axes", i) in ``SweepSpec``).
    """
    lines: list[str] = []
    for err in exc.errors():
        if prefix:
            err = dict(err, loc=tuple(prefix) + tuple(err["loc"]))
        line = _format_error(err, root)
        if line not in lines:
            lines.append(line)
    return lines
