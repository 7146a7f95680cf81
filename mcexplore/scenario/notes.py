"""Provenance notes: the ``{value = ..., estimate = true, why = "..."}`` wrappers of a config.

Any value of a config may be wrapped so to record where it came from. The wrapper is taken off
(``_strip_notes``) before validation and kept as a ``Note`` keyed by the field's dotted path, so the
models stay plain and a measured table simply replaces an estimate (``Scenario.set`` drops the old
note); ``_wrap`` puts a note back around a value when a scenario is written out.

Where it sits: beside mcexplore.scenario.types, below the models and the path helpers; it depends
on no other module of the package.
"""

from pydantic import BaseModel, ConfigDict


class Note(BaseModel):
    """Provenance of one config value: an estimate or not, and why it is what it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    estimate: bool = False
    why: str = ""


_WRAPPER_KEYS = ("value", "estimate", "why")


def _is_wrapper(d) -> bool:
    return isinstance(d, dict) and "value" in d and "dist" not in d


def _strip_notes(node, path: list, notes: dict, errors: list):
    """Take {value, estimate, why} wrappers off a raw config, recording them in ``notes``."""
    if _is_wrapper(node):
        where = ".".join(map(str, path))
        bad = [k for k in node if k not in _WRAPPER_KEYS]
        for k in bad:
            errors.append(f"unknown key {k!r} in [{where}] (valid keys: value, estimate, why)")
        est, why = node.get("estimate", False), node.get("why", "")
        if not isinstance(est, bool):
            errors.append(f"{where}.estimate: {est!r} is not valid: must be true or false")
        if not isinstance(why, str):
            errors.append(f"{where}.why: {why!r} is not valid: must be a string")
        if not bad and isinstance(est, bool) and isinstance(why, str):
            notes[where] = Note(estimate=est, why=why)
        return _strip_notes(node["value"], path, notes, errors)
    if isinstance(node, dict):
        return {k: _strip_notes(v, path + [k], notes, errors) for k, v in node.items()}
    if isinstance(node, list):
        return [_strip_notes(v, path + [i], notes, errors) for i, v in enumerate(node)]
    return node


def _wrap(d, parts: list[str], note: Note):
    node = d
    for p in parts[:-1]:
        if isinstance(node, list) and p.isdigit() and int(p) < len(node):
            node = node[int(p)]
        elif isinstance(node, dict) and p in node:
            node = node[p]
        else:
            return
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = {"value": node[int(last)], "estimate": note.estimate, "why": note.why}
    elif isinstance(node, dict) and last in node:
        node[last] = {"value": node[last], "estimate": note.estimate, "why": note.why}
