"""Parameter sweeps: run a grid of scenarios and collect one tidy table, resumably.

Where it sits: above mcexplore.scenario (each cell is the base scenario with some fields set) and
mcexplore.api (each cell x strategy is one ``run``); below the CLI's ``sweep`` command and the
plots, which read the table it writes.

A sweep file (TOML)::

    base = "thread-2018"        # a shipped config name, or a path (relative to the sweep file)
    trials = 2000
    seed = 2018
    strategies = ["ref", "drop"]          # labels of the base; default: all of them
    overrides = ["budget.max_attempts=200"]   # fixed changes, as --set writes them (an axis of
                                              # the same field wins over them), and/or
    [set]                                     # the same as a table of dotted keys
    "budget.timeout" = "1s"

    [[axes]]                    # a grid of values of one or more dotted fields
    path = ["page.mapcount", "page.active"]   # several paths: all set to the same value
    name = "mapcount"                         # the table's column (default: last key of path[0])
    start = 1
    stop = 256
    num = 9
    scale = "log"               # or "linear"; or give values = [...] instead of start/stop/num
                                # (generated values are rounded to 4 significant digits)
    integer = true              # round and drop duplicates

    [[axes]]
    path = "page.access_rate"
    values = ["0.01/us", "0.1/us", "1/us"]

    [[axes]]                    # a derived quantity
    derived = "window"
    values = ["10us", "100us"]

    rare = "call_failed"        # optional (top level): importance sampling for this outcome, each
    tilt = ["timing.drop_hold.components.1.weight=0.01"]   # cell's search starting here;
    pilot_trials = 2000         # cross-entropy pilot trials per strategy a round, and
    ce_rounds = 6               # rounds at most (the CLI's --rare, --tilt, ... win over these)

Derived axis ``window``: the refcount-sensitive window of one attempt, from the first PTE becoming a
migration entry to the refcount check, W = M * mean(unmap_pte) + pre_freeze (MODEL.md 1.3: F_k -
L_k with M = page.mapcount). For each cell, after every other axis is applied, ``timing.pre_freeze``
is set to the constant W - M * mean(unmap_pte), the mean being that of the compiled
(tabulated) distribution the engines sample. A negative value is an error naming the cell (the
window cannot be shorter than the unmap itself). Page level only.

The file is validated by pydantic models (``SweepSpec``, one ``Axis`` per ``[[axes]]`` table) whose
errors go through the scenario layer's rewriter (mcexplore.scenario.errors): a ``SweepError``, one
line per problem naming the key, the value and what is valid, e.g.
``axes.0.scale: 'cubic' is not valid: must be 'log' or 'linear'``. A cell's values are set together
with ``Scenario.set_many`` and validated once, so their order never matters.

Table (``results.parquet``, or ``results.csv``): one row per cell x strategy, with each axis as a
numeric column (durations in ns, rates in events per second, counts as given) plus ``<axis>_label``
(the value as written in the config), ``strategy``, ``trials``, one count column per outcome,
``sum_<field>`` for the summed fields, ``max_wait_max``, ``hist_<metric>`` (sparse JSON
{bucket: count} of the integer histograms, see ``tables.hist_from_json``), ``seed`` (the cell's),
``base_seed``, ``backend``, ``version``, ``model_version``, ``config_hash``
(Scenario.config_hash(label)), ``cell`` and ``key``; then each outcome's ``_p/_lo/_hi`` at the
sweep's level and ``interval``; adaptive rows add ``stop_outcome``, ``stop_reason``, ``decision``,
``cs_lo``, ``cs_hi``. mcexplore.tables writes it with units and provenance in its metadata, and
again as a dataset partitioned by strategy. The table depends on nothing but the model, the file
and the seed; the seconds each row took go to ``timings.csv``.

A rare sweep (``rare``, the CLI's ``--rare``: docs/analysis.md, "Rare events") runs each cell's
strategies through one ``mcexplore.rare.estimate`` (its own cross-entropy search, then ``trials``
trials per strategy) in this process only, and its rows hold the outcome's importance-sampling
estimate instead of counts (``tables.add_intervals`` computes ``<outcome>``, ``_lo``, ``_hi``,
``_se``, ``hits``, ``ess``, ``mean_weight`` and ``warning`` from each row's exact sums ``is_sums``),
with ``rare_outcome``, ``tilt``, ``ce``, ``pilot_trials`` and ``ce_rounds``; the rare settings and
every strategy of the cell are part of its rows' keys.

Seeding and resume: a cell's seed is a hash of (base seed, the cell's axis values by name), not of
its position, so a table does not depend on the order of the axes, the order in which cells run or
on interruptions. Rows run in chunks of trials (mcexplore.chunks) through mcexplore.feeder, in
this process or on a Dask cluster (mcexplore.cluster). Each finished row is written atomically to
``out_dir/cells/<key>.json``, ``key`` being a hash of the cell's seed, the trial count (or the
adaptive rule), the strategy's config hash and the model version (constants.MODEL_VERSION); the
finished chunks of an unfinished row are kept under ``out_dir/chunks/<key>/``. A rerun with
``resume`` reuses every row whose file exists and every saved chunk, so a killed sweep loses at
most the chunks in progress; rows saved by another model version are recomputed and counted.
The final table is rebuilt from those files and written atomically (temporary file + os.replace).
"""

import hashlib
import json
import tomllib
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, field_validator,
    model_validator,
)

from . import __version__
from .constants import MODEL_VERSION
from . import tables
from .io import atomic_path, atomic_write_bytes
from .results import HIST_METRICS, OUTCOMES, SUMS, Aggregate
# The table's encodings live in mcexplore.tables; these names stay importable from here.
from .tables import aggregate_from_row, hist_from_json, hist_to_json, load_results  # noqa: F401
from .scenario import (
    FieldError, ScenarioError, _format_errors, _MISSING, _shipped_dir, load_scenario, parse_override,
)
from .units import format_ns, format_rate, parse_duration, parse_rate

DERIVED = ("window",)
# A rare sweep's defaults: mcexplore.rare.estimate's (and the CLI's --pilot-trials, --ce-rounds).
RARE_PILOT_TRIALS = 2000
RARE_CE_ROUNDS = 6
RARE_SPEC_KEYS = ("rare", "tilt", "pilot_trials", "ce_rounds")


class SweepError(ScenarioError):
    """A sweep file, axis or cell that is not valid; one line per problem (like ScenarioError,
    which it is a kind of: the CLI turns either into exit status 2 with the message)."""


# ---------------------------------------------------------------------------------------------
# Values with units
# ---------------------------------------------------------------------------------------------

def _value_kind(v) -> str | None:
    """'rate', 'duration' or 'number' for a config value; None if it is none of them."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float, np.integer, np.floating)):
        return "number"
    if isinstance(v, str):
        return "rate" if "/" in v else "duration"
    return None


def _kind(v) -> str:
    """'rate', 'duration' or 'number' for a config value."""
    k = _value_kind(v)
    if k is None:
        raise SweepError(f"{v!r} is not a valid axis value: give numbers or strings with units")
    return k


def _number(v, kind: str) -> float | int:
    """numeric() of a value of a known kind; a bad unit raises UnitError."""
    if kind == "number":
        return v.item() if hasattr(v, "item") else v
    return parse_rate(v) * 1e9 if kind == "rate" else parse_duration(v)


def numeric(v) -> float | int:
    """A config value as a number: durations in ns, rates in events per second, numbers as is."""
    k = _kind(v)
    try:
        return _number(v, k)
    except ValueError as e:
        raise SweepError(str(e)) from None


def _format(x: float, kind: str):
    if kind == "duration":
        return format_ns(x, exact=True)
    if kind == "rate":
        return format_rate(x / 1e9, exact=True)
    return x


# ---------------------------------------------------------------------------------------------
# Spec: pydantic models of the sweep file, validated like a scenario (mcexplore.scenario.errors
# writes each problem as "path: value is not valid: what is valid")
# ---------------------------------------------------------------------------------------------

class _SpecModel(BaseModel):
    # Not frozen: the CLI's --trials replaces spec.trials.
    model_config = ConfigDict(extra="forbid")


def _one_or_list(v):
    return [v] if isinstance(v, str) else v


def _comma_list(v):
    return [x.strip() for x in v.split(",") if x.strip()] if isinstance(v, str) else v


_Key = Annotated[str, Field(min_length=1)]


class Axis(_SpecModel):
    """One ``[[axes]]`` table: the field(s) it sets (``path``) or the derived quantity, its column
    name and its values.

    Once validated an axis is in normal form: ``path`` a list (``paths``: [] for a derived axis),
    ``name`` filled in, ``values`` the grid (generated from start/stop/num and scale, which are
    then cleared, or as given; rounded with ``integer``).
    """

    path: Annotated[list[_Key], BeforeValidator(_one_or_list), Field(min_length=1)] | None = None
    name: _Key | None = None
    values: list[Any] | None = Field(default=None, min_length=1)
    start: Any = None
    stop: Any = None
    num: int | None = Field(default=None, ge=1)
    scale: Literal["log", "linear"] | None = None
    integer: bool = False
    derived: str | None = None

    @field_validator("derived")
    @classmethod
    def _known_derived(cls, v):
        if v is not None and v not in DERIVED:
            raise FieldError((), v, f"not known (known: {', '.join(DERIVED)})")
        return v

    @model_validator(mode="after")
    def _grid(self):
        if self.derived is not None and self.path is not None:
            raise FieldError("path", self.path, "give either path or derived, not both")
        if self.derived is None and self.path is None:
            raise FieldError("path", _MISSING, 'give path = "section.key" (or a list of paths) '
                             f"or derived = {' or '.join(repr(d) for d in DERIVED)}")
        if self.name is None:
            self.name = self.derived or self.path[0].split(".")[-1]
        ranged = {k: getattr(self, k) for k in ("start", "stop", "num", "scale") if getattr(self, k) is not None}
        if self.values is not None:
            if ranged:
                k = next(iter(ranged))
                raise FieldError(k, ranged[k], "give values or start/stop/num, not both")
            values = list(self.values)
            for i, v in enumerate(values):
                if _value_kind(v) is None:
                    raise FieldError(("values", i), v, "give numbers or strings with units")
            if self.integer:
                values = [int(round(v)) if _value_kind(v) == "number" else v for v in values]
        else:
            values = self._range()
        kinds = sorted({_value_kind(v) for v in values})
        if len(kinds) > 1:
            raise FieldError("values", values, f"values mix {' and '.join(kinds)}: give numbers, "
                             "durations or rates, one kind per axis")
        nums = []
        for i, v in enumerate(values):
            try:
                nums.append(_number(v, kinds[0]))
            except ValueError as e:
                raise FieldError(("values", i), v, getattr(e, "reason", str(e))) from None
        if len(set(nums)) != len(nums):
            raise FieldError("values", values, "values repeat (each value once)")
        self.values = values
        self.start = self.stop = self.num = self.scale = None
        return self

    def _range(self) -> list:
        missing = [k for k in ("start", "stop", "num") if getattr(self, k) is None]
        if missing:
            blame = "values" if len(missing) == 3 else missing[0]
            raise FieldError(blame, _MISSING, "give values = [...] or start, stop and num")
        for k in ("start", "stop"):
            if _value_kind(getattr(self, k)) is None:
                raise FieldError(k, getattr(self, k), "give a number or a string with units")
        kind = _value_kind(self.start)
        if _value_kind(self.stop) != kind:
            raise FieldError("stop", self.stop, f"start and stop must be of the same kind (start is a {kind})")
        ab = []
        for k in ("start", "stop"):
            try:
                ab.append(float(_number(getattr(self, k), kind)))
            except ValueError as e:
                raise FieldError(k, getattr(self, k), getattr(e, "reason", str(e))) from None
        a, b = ab
        num = self.num
        if self.scale == "log":
            if a <= 0 or b <= 0:
                k = "start" if a <= 0 else "stop"
                raise FieldError(k, getattr(self, k), "a log scale needs start and stop > 0")
            xs = np.geomspace(a, b, num)
        else:
            xs = np.linspace(a, b, num)
        if self.integer:
            out = []
            for x in xs:
                v = int(round(x))
                if v not in out:
                    out.append(v)
            if kind != "number":
                out = [_format(v, kind) for v in out]
            return out
        xs = [float(f"{x:.4g}") for x in xs]  # 4 significant digits: readable labels, exact ends
        if len(set(xs)) != len(xs):
            raise FieldError("num", num, "num too large for 4 significant digits between start and stop")
        if kind == "number":
            return xs
        return [_format(x, kind) for x in xs]

    @property
    def kind(self) -> str:
        """'rate', 'duration' or 'number': what the axis's values are (one kind per axis)."""
        return _kind(self.values[0])

    @property
    def paths(self) -> list[str]:
        """The dotted paths set to the value (empty for a derived axis)."""
        return list(self.path or [])

    @classmethod
    def from_dict(cls, d: dict, i: int = 0) -> "Axis":
        """Validate the ``i``-th ``[[axes]]`` table of a sweep file (errors name ``axes.<i>``)."""
        try:
            return cls.model_validate(d)
        except ValidationError as e:
            raise SweepError(_format_errors(e, SweepSpec, prefix=("axes", i))) from None


class SweepSpec(_SpecModel):
    """A sweep file (see the module docstring), validated.

    Once validated, ``overrides`` holds every fixed change as (path, value) pairs, the ``[set]``
    table's included (``set`` is then empty), less those of a field that an axis sets (the axis
    wins); ``strategies`` is a list of labels or None (all of the base's).
    """

    base: str
    trials: int = Field(ge=1)
    seed: int = 0
    strategies: Annotated[list[_Key], BeforeValidator(_comma_list), Field(min_length=1)] | None = None
    overrides: list[tuple[str, Any]] = Field(default_factory=list)
    set: dict[str, Any] = Field(default_factory=dict)
    axes: list[Axis] = Field(default_factory=list)
    level: float = Field(default=0.95, gt=0, lt=1)
    name: str | None = None
    description: str | None = None
    # Importance sampling (docs/analysis.md, "Rare events"): every cell chooses its own tilt for
    # the outcome ``rare`` by the cross-entropy method (starting from ``tilt``, PATH=VALUE strings).
    rare: str | None = None
    tilt: Annotated[list[_Key], BeforeValidator(_one_or_list)] | None = None
    pilot_trials: int | None = Field(default=None, ge=1)
    ce_rounds: int | None = Field(default=None, ge=1, le=100)

    _source: str | None = PrivateAttr(default=None)

    @field_validator("rare")
    @classmethod
    def _known_outcome(cls, v):
        if v is not None and v not in OUTCOMES:
            raise FieldError((), v, f"not an outcome (valid: {', '.join(OUTCOMES)})")
        return v

    @field_validator("tilt")
    @classmethod
    def _tilt_items(cls, v):
        for i, item in enumerate(v or ()):
            if "=" not in item:
                raise FieldError(i, item, "write PATH=VALUE, e.g. timing.drop_hold.components.1.weight=0.05")
        return v

    @field_validator("overrides", mode="before")
    @classmethod
    def _parse_overrides(cls, v):
        if isinstance(v, str):
            v = [v]  # one override
        if not isinstance(v, (list, tuple)):
            return v
        out = []
        for i, item in enumerate(v):
            if isinstance(item, str):
                if "=" not in item:
                    raise FieldError(i, item, "write PATH=VALUE, as --set does (e.g. page.mapcount=2)")
                item = parse_override(item)
            out.append(item)
        return out

    @model_validator(mode="after")
    def _consistent(self):
        seen: dict[str, int] = {}
        for j, a in enumerate(self.axes):
            if a.name in seen:
                raise FieldError(("axes", j, "name"), a.name, f"axis names repeat (axes.{seen[a.name]} "
                                 'has it too): give one of them name = "..."')
            seen[a.name] = j
        setter: dict[str, int] = {}
        for j, a in enumerate(self.axes):
            for p in a.paths:
                if p in setter:
                    raise FieldError(("axes", j, "path"), p, f"set more than once in axes "
                                     f"(axes.{setter[p]} sets it too)")
                setter[p] = j
        window = any(a.derived == "window" for a in self.axes)
        if window and "timing.pre_freeze" in setter:
            raise FieldError(("axes", setter["timing.pre_freeze"], "path"), "timing.pre_freeze",
                             "the window axis sets timing.pre_freeze: no other axis may")
        ov = list(self.overrides) + _flatten(self.set)
        paths = [p for p, _ in ov]
        dup = sorted({p for p in paths if paths.count(p) > 1})
        if dup:
            raise FieldError("overrides", dup[0], "set more than once in overrides and [set]")
        # an axis wins over a fixed override of the same field (the override is the default)
        axis_paths = set(setter) | ({"timing.pre_freeze"} if window else set())
        self.overrides = [(p, v) for p, v in ov if p not in axis_paths]
        self.set = {}
        if self.rare is None:
            for k in ("tilt", "pilot_trials", "ce_rounds"):
                if getattr(self, k) is not None:
                    raise FieldError(k, getattr(self, k), 'needs rare = "OUTCOME" (importance sampling '
                                     "for that outcome; the tilt is where each cell's search starts)")
        return self

    @property
    def rare_settings(self) -> dict | None:
        """The importance-sampling settings of every row (``rare``, ``tilt``, ``pilot_trials``,
        ``ce_rounds``, defaults filled in), or None for an ordinary sweep."""
        if self.rare is None:
            return None
        return {"rare": self.rare, "tilt": list(self.tilt or []),
                "pilot_trials": self.pilot_trials or RARE_PILOT_TRIALS,
                "ce_rounds": self.ce_rounds or RARE_CE_ROUNDS}

    @property
    def source(self) -> str | None:
        """The file it was read from, if any (error messages start with it)."""
        return self._source

    @classmethod
    def from_dict(cls, d: dict, base_dir: str | Path | None = None, source: str | None = None) -> "SweepSpec":
        """Validate a sweep file's table; ``base`` is looked up relative to ``base_dir`` first."""
        try:
            spec = cls.model_validate(d)
        except ValidationError as e:
            raise SweepError(_format_errors(e, cls), source) from None
        if base_dir is not None and (Path(base_dir) / spec.base).is_file():
            spec.base = str(Path(base_dir) / spec.base)
        spec._source = source
        return spec

    @property
    def n_cells(self) -> int:
        return int(np.prod([len(a.values) for a in self.axes])) if self.axes else 1

    def cells(self):
        """Every cell as a dict axis name -> config value, in grid order (first axis slowest)."""
        for combo in product(*[a.values for a in self.axes]):
            yield {a.name: v for a, v in zip(self.axes, combo)}


def _flatten(d: dict, prefix: str = "") -> list:
    """A [set] table to (dotted path, value) pairs; a table holding `dist` or `value` is a value."""
    out = []
    for k, v in d.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and not ({"dist", "value"} & set(v)):
            out += _flatten(v, path + ".")
        else:
            out.append((path, v))
    return out


def load_sweep(path) -> SweepSpec:
    """A sweep file by path, or by the name of a shipped one ("sweep-thread-2018")."""
    p = Path(path)
    if not p.is_file():
        name = str(path) if str(path).endswith(".toml") else f"{path}.toml"
        shipped = Path(str(_shipped_dir().joinpath(name)))
        if shipped.is_file():
            p = shipped
    try:
        d = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepError(f"{path}: no such sweep file") from None
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"{path}: not valid TOML: {e}") from None
    return SweepSpec.from_dict(d, base_dir=p.parent, source=str(p))


# ---------------------------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------------------------

def _canon(v):
    return v.item() if hasattr(v, "item") else v


def cell_seed(base_seed: int, cell: dict) -> int:
    """63-bit seed from (base seed, the cell's axis values by name): independent of axis order."""
    text = json.dumps({"seed": int(base_seed), "cell": {k: _canon(v) for k, v in sorted(cell.items())}},
                      sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & (2**63 - 1)


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def _apply(scenario, settings: list, what: str):
    """The scenario with every (path, value) of ``settings`` set, through Scenario.set_many: all
    the values go in first and the result is validated once, so a cell that is valid only once all
    of its values are in (mapcount 1 with active 201 is not; mapcount 1 with active 1 is) needs no
    retries and no particular order. A problem is a SweepError naming ``what`` (the cell)."""
    try:
        return scenario.set_many(settings)
    except ScenarioError as e:
        raise SweepError([f"{what}: {line}" for line in e.lines]) from None


def window_pre_freeze_ns(scenario, window_ns: float) -> float:
    """pre_freeze giving a refcount-sensitive window W = M * mean(unmap_pte) + pre_freeze."""
    if scenario.level != "page":
        raise SweepError("the window axis is defined at page level only")
    m = scenario.page.mapcount
    mean_unmap = scenario.world().dist("unmap_pte").mean_ns  # as the engines sample it
    return window_ns - m * mean_unmap


def cell_scenario(spec: SweepSpec, base, cell: dict):
    """The base scenario with the cell's values set (derived axes last)."""
    settings = []
    for a in spec.axes:
        if a.derived is None:
            settings += [(p, cell[a.name]) for p in a.paths]
    what = "cell " + ", ".join(f"{k}={v}" for k, v in cell.items())
    s = _apply(base, settings, what) if settings else base
    for a in spec.axes:
        if a.derived == "window":
            w = numeric(cell[a.name])
            pf = window_pre_freeze_ns(s, w)
            if pf < 0:
                raise SweepError(f"{what}: window {cell[a.name]} is shorter than mapcount x mean(unmap_pte) = "
                                 f"{format_ns(w - pf)}: pre_freeze would be {format_ns(pf)}")
            s = _apply(s, [("timing.pre_freeze", format_ns(pf, exact=True))], what)
    return s


def base_scenario(spec: SweepSpec):
    """The base config with the spec's fixed overrides and strategy selection."""
    try:
        s = load_scenario(spec.base)
    except ScenarioError as e:
        raise SweepError(f"base: {e}") from None
    if spec.overrides:
        s = _apply(s, spec.overrides, "overrides")
    if spec.strategies:
        try:
            s = s.with_strategies(spec.strategies)
        except ScenarioError as e:
            raise SweepError(f"strategies: {e}") from None
    return s


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------

def _row(spec, cell, seed, label, scen, agg, backend, key, cell_id, stopper=None) -> dict:
    row = {}
    for a in spec.axes:
        row[a.name] = numeric(cell[a.name])
        row[f"{a.name}_label"] = str(cell[a.name])
    row.update({"strategy": label, "trials": agg.trials})
    row.update({o: int(agg.counts[o]) for o in OUTCOMES})
    row.update({f"sum_{s}": int(agg.sums[s]) for s in SUMS})
    row["max_wait_max"] = int(agg.max_wait_max)
    row.update({f"hist_{m}": hist_to_json(agg.hists[m]) for m in HIST_METRICS})
    row.update({"seed": seed, "base_seed": spec.seed, "backend": backend, "version": __version__,
                "model_version": MODEL_VERSION, "config_hash": scen.config_hash(label),
                "scenario": scen.name, "cell": cell_id, "key": key})
    if stopper is not None:
        d = stopper.to_dict()
        row.update({"stop_outcome": d["outcome"], "stop_reason": d["stop_reason"],
                    "decision": d["decision"] or "", "cs_lo": d["cs_lo"], "cs_hi": d["cs_hi"]})
    return row


@dataclass(frozen=True)
class PlannedRow:
    """One row of a sweep before it runs: its cell, seed, scenario, strategy and keys.

    ``key`` (the cell file's name) hashes what the row's numbers depend on: the seed, the trial
    count or the stopping rule, the strategy's config hash and the model version; ``ident`` is the
    same without the model version, so a file of an older model is recognised and explained."""

    cell: dict
    seed: int
    scenario: Any
    label: str
    key: str
    ident: str
    cell_id: str


def _rule_key(rule) -> dict | None:
    if rule is None:
        return None
    return {"target_rel_error": rule.target_rel_error, "until_upper_bound": rule.until_upper_bound,
            "target_half_width": rule.target_half_width,
            "max_trials": int(rule.max_trials), "batch_trials": rule.batch_trials, "outcome": rule.outcome,
            "level": rule.level, "prior": list(rule.prior)}


def _rare_key(spec: SweepSpec, scen, what: str) -> dict:
    """What a rare row's numbers depend on beyond its seed, trials and strategy: the outcome, the
    search's start (resolved in the cell's units) and settings, and every strategy of its cell
    with its config hash (the strategies of a cell share one tilt, chosen from their pooled hits).
    Checks the tilt against the cell (a SweepError naming it)."""
    from . import tilt as _tilt

    rs = spec.rare_settings
    try:
        start = _tilt.resolve(scen, rs["tilt"])
        if not _tilt.tiltable(scen):
            raise _tilt.TiltError("rare: this scenario has nothing to tilt (no mixture, exponential or rate)")
    except _tilt.TiltError as e:
        raise SweepError(f"{what}: {e}") from None
    return {"outcome": rs["rare"], "tilt": sorted([p, repr(float(v))] for p, v in start.items()),
            "pilot_trials": int(rs["pilot_trials"]), "ce_rounds": int(rs["ce_rounds"]),
            "strategies": [[label, scen.config_hash(label)] for label in scen.labels()]}


def plan(spec: SweepSpec, rule=None) -> list[PlannedRow]:
    """Every row of the sweep, in grid order; validates all cells before anything runs. With an
    adaptive ``rule`` (mcexplore.adaptive.StopRule) the rule replaces the trial count in the keys;
    a rare sweep (``spec.rare``) adds its importance-sampling settings (``_rare_key``), so a crude
    row and a rare row never share a key."""
    base = base_scenario(spec)
    out = []
    amount = {"trials": spec.trials} if rule is None else {"rule": _rule_key(rule)}
    for cell in spec.cells():
        seed = cell_seed(spec.seed, cell)
        scen = cell_scenario(spec, base, cell)
        cell_id = _hash({"seed": seed, "cell": {k: _canon(v) for k, v in cell.items()}})
        if spec.rare is not None:
            what = "cell " + ", ".join(f"{k}={v}" for k, v in cell.items()) if cell else "the sweep"
            amount = {"trials": spec.trials, "rare": _rare_key(spec, scen, what)}
        for label in scen.labels():
            ident = {"seed": seed, **amount, "config": scen.config_hash(label)}
            key = _hash({**ident, "model": MODEL_VERSION})
            out.append(PlannedRow(cell, seed, scen, label, key, _hash(ident), cell_id))
    return out


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep: what is saved and how to go on (the CLI prints ``str()``)."""

    def __init__(self, saved: int, total: int, out_dir: Path):
        self.saved, self.total, self.out_dir = saved, total, out_dir
        super().__init__(f"interrupted: {saved} of {total} rows are saved under {out_dir / 'cells'} "
                         "(and finished chunks of the others under chunks/): rerun the same command "
                         "to resume")


def _lock(out_dir: Path):
    """An exclusive lock on ``out_dir`` (released when the process ends, even by a kill): two
    sweeps writing one folder would remove each other's temporary files."""
    import fcntl

    f = open(out_dir / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise SweepError(f"--out: {str(out_dir)!r} is being written by another sweep: wait for it or "
                         "give another folder") from None
    return f


def _remove_stale_tmp(out_dir: Path) -> int:
    """Temporary files of earlier sweeps killed while writing (under the lock no live writer has
    any): removed, and counted for the report."""
    n = 0
    for f in out_dir.rglob(".*.tmp"):
        try:
            f.unlink()
            n += 1
        except OSError:
            pass
    return n


def _saved_rows(cells_dir: Path) -> tuple[dict, dict]:
    """{key: (row, examples)} of the readable cell files, and {ident: model version} of those
    written by another model version."""
    rows, other = {}, {}
    for f in cells_dir.glob("*.json"):
        try:
            d = json.loads(f.read_text())
            row = d["row"]
        except (ValueError, KeyError, TypeError):
            continue  # a damaged cell file is recomputed
        if f.stem == row.get("key"):
            rows[f.stem] = (row, d.get("examples", {}))
        mv = d.get("model_version", row.get("model_version"))
        if mv != MODEL_VERSION and d.get("ident"):
            other[d["ident"]] = mv
    return rows, other


def run_sweep(spec, out_dir, backend: str = "auto", resume: bool = True, progress: bool = False,
              fmt: str = "parquet", batch: int | None = None, on_row=None, *, cluster: str | None = None,
              executor=None, rule=None, chunk_s: float | None = None, on_chunk=None,
              dataset: bool = True) -> pd.DataFrame:
    """Run every cell x strategy of ``spec`` (a SweepSpec, a dict or a sweep file path) and write
    ``out_dir/results.<fmt>`` (and the dataset ``out_dir/dataset/``, see mcexplore.tables);
    returns the table, with a summary of the run in ``table.attrs["sweep"]`` (rows reused and run,
    older-model rows recomputed, stale temporary files removed, tasks and chunks).

    ``cluster``: where the chunks run (mcexplore.cluster: None = this process, "local:N", "cuda",
    "tcp://HOST:PORT"), or give an ``executor`` (kept open). ``rule``: an adaptive StopRule per row
    instead of ``spec.trials``. ``on_row(row)`` is called after each row is saved (finished or
    reused), ``on_chunk(ChunkResult)`` after each chunk arrives. The table does not depend on the
    cluster, the number of workers or the chunk sizes, bit for bit.
    """
    from .cluster import executor as make_executor
    from .feeder import ChunkStore, Feeder, RowJob

    if not isinstance(spec, SweepSpec):
        spec = load_sweep(spec) if isinstance(spec, (str, Path)) else SweepSpec.from_dict(spec)
    if fmt not in ("parquet", "csv"):
        raise SweepError(f"fmt must be 'parquet' or 'csv', got {fmt!r}")
    out_dir = Path(out_dir)
    cells_dir = out_dir / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    if spec.rare is not None:
        if rule is not None:
            raise SweepError("rare: importance sampling runs a fixed number of trials per row; it "
                             "cannot be combined with an adaptive stopping rule")
        if cluster is not None or executor is not None:
            raise SweepError("--cluster: a rare sweep (importance sampling) runs in this process only: "
                             "each cell's cross-entropy rounds are sequential (each round's tilt comes "
                             "from the previous round's hits), so a cell does not split into chunks")
    todo = plan(spec, rule)
    lock = _lock(out_dir)
    summary = {"rows": len(todo), "reused": 0, "run": 0, "recomputed_older_model": 0,
               "stale_tmp_removed": _remove_stale_tmp(out_dir), "chunks_resumed": 0, "trials_run": 0}
    rows: dict = {}
    saved, older = _saved_rows(cells_dir) if resume else ({}, {})
    store = ChunkStore(out_dir / "chunks")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="sweep", unit="row", smoothing=0.1)

    def done(row):
        rows[row["key"]] = row
        if bar is not None:
            bar.update(1)
        if on_row is not None:
            on_row(row)

    def finished(job, agg):
        pr = job.tag
        row = _row(spec, pr.cell, pr.seed, pr.label, pr.scenario, agg, "+".join(sorted(job.backends)) or backend,
                   pr.key, pr.cell_id, job.stopper)
        atomic_write_bytes(cells_dir / f"{pr.key}.json", json.dumps(
            {"row": row, "examples": agg.examples, "model_version": MODEL_VERSION, "ident": pr.ident,
             "wall_s": job.wall_s}).encode())
        timings.append({"key": pr.key, "strategy": pr.label, "cell": pr.cell_id, "trials": agg.trials,
                        "wall_s": job.wall_s})
        done(row)

    def chunk_arrived(r):
        job = jobs[r.key]
        job.backends.add(r.backend)
        job.wall_s += r.wall_s
        summary["trials_run"] += r.t1 - r.t0
        if on_chunk is not None:
            on_chunk(r)

    timings: list = []
    jobs: dict = {}
    ex = None
    try:
        rare = spec.rare is not None
        if rare:  # in this process, cell by cell (each cell's search is sequential)
            _run_rare_rows(spec, todo, saved, older, cells_dir, backend, summary, timings, done)
        for pr in ([] if rare else todo):
            if pr.key in saved:
                summary["reused"] += 1
                done(saved[pr.key][0])
                continue
            if pr.ident in older:
                summary["recomputed_older_model"] += 1
            job = RowJob(pr.key, pr.scenario, pr.label, pr.seed, None if rule else spec.trials, rule,
                         backend, batch, tag=pr)
            jobs[pr.key] = job
        if jobs:
            ex = executor if executor is not None else make_executor(cluster)
            feeder = Feeder(ex, store, chunk_s=chunk_s, on_row=finished, on_chunk=chunk_arrived)
            for job in jobs.values():
                prior = store.load(job.key) if resume else []
                if not resume:
                    store.drop(job.key)
                summary["chunks_resumed"] += len(prior)
                for r in prior:
                    job.backends.add(r.backend)
                    job.wall_s += r.wall_s
                feeder.add(job, prior)
            feeder.run(jobs)
            summary.update({"tasks": feeder.tasks, "chunks": feeder.chunks})
        if not rare:
            summary["run"] = len(jobs)
        summary["executor"] = (getattr(ex, "name", "in-process") if ex is not None else
                               "in-process" if rare and summary["run"] else "none")
        summary["workers"] = getattr(ex, "workers", 0) if ex is not None else 0
    except KeyboardInterrupt:
        raise SweepInterrupted(len(rows), len(todo), out_dir) from None
    finally:
        if bar is not None:
            bar.close()
        if ex is not None and executor is None:
            ex.close()
        lock.close()
    df = tables.add_intervals(pd.DataFrame([rows[pr.key] for pr in todo]), spec.level)
    prov = provenance(spec, df, rule)
    tables.write_results(df, out_dir / f"results.{fmt}", spec, prov)
    if dataset:
        tables.write_dataset(df, out_dir / "dataset", spec, prov)
    if timings:
        _append_timings(out_dir / "timings.csv", timings)
    df.attrs["sweep"] = summary
    return df


def _rare_row(spec, pr, label, res, err, n_trials, backend) -> dict:
    """A rare row as saved: its identification, ``trials``, ``rare_outcome``, the exact sums of the
    outcome and of all weights (``is_sums``: JSON, integers as decimal strings, in units of
    2**-1074: mcexplore.rare.ISAggregate), the cell's tilt (``tilt``: JSON {path: value in the
    parameter's own unit}) and search (``ce``: its rounds), the settings, and ``warning`` when the
    cell has no estimate (the search found no tilt). tables.add_intervals turns the sums into the
    estimate, interval, ESS and mean-weight columns at the table's level."""
    rs = spec.rare_settings
    o = rs["rare"]
    row = {}
    for a in spec.axes:
        row[a.name] = numeric(pr.cell[a.name])
        row[f"{a.name}_label"] = str(pr.cell[a.name])
    row.update({"strategy": label, "trials": int(n_trials), "rare_outcome": o})
    if res is not None:
        agg = res.runs[label].agg
        row["is_sums"] = tables.is_sums_to_json(agg, o)
        row["tilt"] = json.dumps({k: float(v) for k, v in res.tilt.items()}, sort_keys=True)
        rounds = res.choice.rounds if res.choice is not None else []
    else:
        row["is_sums"] = ""
        row["tilt"] = ""
        rounds = []
    row["ce"] = json.dumps([{"trials": r.trials, "hits": r.hits, "action": r.action} for r in rounds])
    row.update({"pilot_trials": int(rs["pilot_trials"]), "ce_rounds": int(rs["ce_rounds"]),
                "warning": err or ""})
    row.update({"seed": pr.seed, "base_seed": spec.seed, "backend": backend, "version": __version__,
                "model_version": MODEL_VERSION, "config_hash": pr.scenario.config_hash(label),
                "scenario": pr.scenario.name, "cell": pr.cell_id, "key": pr.key})
    return row


def _run_rare_rows(spec, todo, saved, older, cells_dir, backend, summary, timings, done) -> None:
    """A rare sweep's rows, cell by cell in this process: each cell's strategies share one
    ``mcexplore.rare.estimate`` (its own cross-entropy search from the cell's seed, then
    ``spec.trials`` trials per strategy on that seed); a cell whose rows are all saved is reused. A
    cell where the search finds no tilt gets rows with no estimate and the reason in ``warning``."""
    import time

    from . import rare
    from .tilt import TiltError

    rs = spec.rare_settings
    groups: dict = {}
    for pr in todo:
        groups.setdefault(pr.cell_id, []).append(pr)
    for prs in groups.values():
        if all(pr.key in saved for pr in prs):
            for pr in prs:
                summary["reused"] += 1
                done(saved[pr.key][0])
            continue
        summary["recomputed_older_model"] += sum(pr.ident in older for pr in prs)
        scen, labels = prs[0].scenario, [pr.label for pr in prs]
        t = time.perf_counter()
        res, err = None, None
        try:
            res = rare.estimate(scen, labels, trials=spec.trials, seed=prs[0].seed, outcome=rs["rare"],
                                tilt=rs["tilt"], backend=backend, level=spec.level,
                                pilot_trials=rs["pilot_trials"], rounds=rs["ce_rounds"])
        except (TiltError, OverflowError) as e:
            err = f"no estimate: {e}"
        wall = time.perf_counter() - t
        ran = res.backend if res is not None else (backend if backend != "auto" else "")
        pilots = sum(r.trials for r in res.choice.rounds) if res is not None and res.choice else 0
        summary["trials_run"] += pilots + (spec.trials * len(labels) if res is not None else 0)
        for pr in prs:
            row = _rare_row(spec, pr, pr.label, res, err, spec.trials if res is not None else 0, ran)
            atomic_write_bytes(cells_dir / f"{pr.key}.json", json.dumps(
                {"row": row, "examples": {}, "model_version": MODEL_VERSION, "ident": pr.ident,
                 "wall_s": wall / len(prs)}).encode())
            timings.append({"key": pr.key, "strategy": pr.label, "cell": pr.cell_id,
                            "trials": row["trials"], "wall_s": wall / len(prs)})
            summary["run"] += 1
            done(row)


def provenance(spec, df: pd.DataFrame, rule=None) -> dict:
    """Where a table's numbers come from: enough to recompute it."""
    base = base_scenario(spec)
    spec_d = spec.model_dump(mode="json")
    for k in RARE_SPEC_KEYS:  # an ordinary sweep's hash as before the rare keys existed
        if spec_d.get(k) is None:
            spec_d.pop(k, None)
    return {
        "mcexplore_version": __version__, "model_version": MODEL_VERSION,
        "scenario": base.name, "scenario_hash": base.config_hash(),
        "sweep_hash": hashlib.sha256(json.dumps(spec_d, sort_keys=True).encode()).hexdigest()[:16],
        "sweep": spec_d,
        "backend": sorted(set(df["backend"])) if len(df) else [],
        "seed": spec.seed, "level": spec.level,
        "trials": None if rule is not None else spec.trials,
        "adaptive": None if rule is None else {"target_rel_error": rule.target_rel_error,
                                                "until_upper_bound": rule.until_upper_bound,
                                                "target_half_width": rule.target_half_width,
                                                "max_trials": int(rule.max_trials), "outcome": rule.outcome,
                                                "level": rule.level},
        "intervals": tables.INTERVALS,
        **({"rare": spec.rare_settings} if spec.rare is not None else {}),
    }


def _append_timings(path: Path, timings: list) -> None:
    """Compute seconds per row (summed over its chunks) of the rows run now, added to those of
    earlier runs: kept apart from the results, which must not depend on how fast a machine is."""
    new = pd.DataFrame(timings)
    if path.is_file():
        try:
            old = pd.read_csv(path, dtype={"key": str, "cell": str, "strategy": str})
            new = pd.concat([old[~old.key.isin(new.key)], new], ignore_index=True)
        except (ValueError, OSError, AttributeError):
            pass
    with atomic_path(path) as tmp:
        new.to_csv(tmp, index=False)


def table_aggregates(table: pd.DataFrame, by=("strategy",)) -> dict:
    """Merge the rows of a table by the ``by`` columns: {key: Aggregate}."""
    out = {}
    by = list(by)
    for key, g in table.groupby(by, sort=False):
        key = key[0] if isinstance(key, tuple) and len(key) == 1 else key
        agg = Aggregate()
        for _, r in g.iterrows():
            agg = agg.merge(aggregate_from_row(r))
        out[key] = agg
    return out
