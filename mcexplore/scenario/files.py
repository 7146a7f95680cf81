"""Config files: the configs shipped in the wheel (package ``mcexplore.configs``, the repo's
configs/) and ``load_scenario``, which reads a TOML config by path or shipped name and applies
``--set`` overrides.

Where it sits: at the top of mcexplore.scenario, above the models and the path helpers; the CLI,
sweeps (mcexplore.sweep: shipped sweep files live beside the configs) and notebooks call it.
"""

import importlib.resources
import tomllib
from collections.abc import Iterable
from pathlib import Path

from .models import Scenario, _build
from .paths import _assign, _split_path, parse_override
from .types import ScenarioError

DEFAULT_SCENARIO = "thread-2018"


def _shipped_dir():
    """The configs shipped in the wheel (package mcexplore.configs), or the repo's configs/."""
    try:
        return importlib.resources.files("mcexplore.configs")
    except ModuleNotFoundError:
        # Running from a checkout whose editable install predates the package mapping.
        return Path(__file__).resolve().parents[2] / "configs"


def list_shipped() -> list[str]:
    """Names of the shipped scenarios (load them with load_scenario(name)); sweep files
    (``sweep-*.toml``, read by mcexplore.sweep.load_sweep) are not scenarios."""
    return sorted(p.name[:-5] for p in _shipped_dir().iterdir()
                  if p.name.endswith(".toml") and not p.name.startswith("sweep-"))


def default_scenario_path() -> Path:
    return Path(str(_shipped_dir().joinpath(DEFAULT_SCENARIO + ".toml")))


def _locate(path_or_name) -> tuple[str, str, str]:
    """(text, source for messages, default name)."""
    p = Path(path_or_name)
    if p.is_file():
        return p.read_text(encoding="utf-8"), str(p), p.stem
    name = str(path_or_name)
    name = name[:-5] if name.endswith(".toml") else name
    shipped = list_shipped()
    if name in shipped:
        res = _shipped_dir().joinpath(name + ".toml")
        return res.read_text(encoding="utf-8"), f"{name}.toml (shipped)", name
    raise ScenarioError(f"{str(path_or_name)!r} is neither a config file nor a shipped config "
                        f"(shipped: {', '.join(shipped)})")


def load_scenario(path_or_name=DEFAULT_SCENARIO, overrides: Iterable[str] = ()) -> Scenario:
    """Read a TOML config (a path, or the name of a shipped one) and apply "path=VALUE" overrides."""
    text, source, stem = _locate(path_or_name)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"not valid TOML: {e}", source) from None
    raw.setdefault("name", stem)
    s = _build(raw, {}, source)
    if isinstance(overrides, str):
        overrides = [overrides]
    overrides = list(overrides)
    if not overrides:
        return s
    # Applied together, so that e.g. level=block and block.classes=[...] can go in one call; a
    # bad path is blamed on its own override, a bad value on the field it reaches.
    changes = []
    for ov in overrides:
        try:
            path, value = parse_override(ov)
            _assign(s._raw(), _split_path(path), value, Scenario)  # checks the path alone
        except ScenarioError as e:
            raise ScenarioError(e.lines, f"override {ov!r}") from None
        changes.append((path, value))
    where = f"override {overrides[0]!r}" if len(overrides) == 1 else \
        "overrides " + ", ".join(repr(o) for o in overrides)
    try:
        return s.set_many(changes)
    except ScenarioError as e:
        raise ScenarioError(e.lines, where) from None
