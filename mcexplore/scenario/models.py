"""The scenario models (MODEL.md 1.1, 1.4, 1.6, 1.7): Page, BlockClass, Transient, Timing,
Budget, Block, Strategy and the Scenario that holds them, with its queries, derivations
(``set``, ``set_many``, ``with_strategies``), canonical form, hash and compilation.

Where it sits: above every other module of mcexplore.scenario but the file loading
(mcexplore.scenario.files); it validates through pydantic and reports through the error rewriter
(mcexplore.scenario.errors). Strategy names and options come from the strategy registry
(mcexplore.strategies), read when a scenario is validated, not when this module is imported.
Compilation goes through the scenario's World (mcexplore.scenario.world), built once per object.
"""

import hashlib
import json
import re
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from .. import strategies as registry
from .. import transient
from ..constants import TASK_WORDS
from ..params import DIST_NAMES, Compiled, PageClass
from ..units import format_ns, format_rate
from .distributions import Distribution
from .errors import _format_errors
from .notes import Note, _strip_notes, _wrap
from .paths import _assign, _split_path, _to_plain
from .tomlwrite import _to_toml
from .types import (
    Active, FieldError, PositiveDuration, Rate, ScenarioError, _MISSING, _Model, _choices,
)
from .world import World, _WorldCache

TIMING_NAMES = tuple(n for n in DIST_NAMES if n not in ("access", "transient_hold"))
_LABEL_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# Top-level fields that the compiled world does not depend on: a scenario derived by changing only
# these keeps its parent's World (Scenario._same_world).
_NOT_WORLD = ("name", "description", "strategies")

# The memory guard (a configuration error, not a std::bad_alloc abort or a swapping machine). One
# trial of a page needs, per active task, the larger of the numpy engine's PageSim task state (15
# int64 and 7 one-byte columns: 127 B; mcexplore.engines.numpy_page) and the kernels' per-trial
# scratch (constants.TASK_WORDS int64 words: 104 B; mcexplore.engines.pack.scratch_words), and per
# PTE (mapcount) the numpy engine's per-PTE draws of an unmap or a remap (PageSim._per_pte: row and
# key columns, Philox words, the cumulative sum; about 120 B measured, 128 B counted). The numpy
# engine's smallest batch is 64 trials (NumpyEngine.default_batch). A page (or block class) whose
# smallest batch would need more than MAX_BATCH_BYTES is refused, the same on every machine.
TASK_BYTES = max(15 * 8 + 7, TASK_WORDS * 8)
PTE_BYTES = 128
MIN_BATCH_TRIALS = 64
MAX_BATCH_BYTES = 8 << 30


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover


class _PageLike(_Model):
    """What Page and BlockClass share: active <= mapcount, and the compiled PageClass."""

    @model_validator(mode="after")
    def _check_active(self):
        if self.active != "all" and self.active > self.mapcount:
            raise FieldError("active", self.active, "must be <= {0} (%d)" % self.mapcount, refs=("mapcount",))
        return self

    @model_validator(mode="after")
    def _check_memory(self):
        count = getattr(self, "count", None)
        hot = count if (count is not None and self.access_rate > 0) else 1  # block: every hot page's tasks
        tasks, ptes = hot * self.n_active, self.mapcount
        per_trial = tasks * TASK_BYTES + ptes * PTE_BYTES
        if per_trial * MIN_BATCH_TRIALS > MAX_BATCH_BYTES:
            field = "mapcount" if (self.active == "all" or ptes * PTE_BYTES >= tasks * TASK_BYTES) else "active"
            per_page = f" ({count} hot pages x {self.n_active})" if hot > 1 else ""
            raise FieldError(field, getattr(self, field),
                             f"{ptes} PTEs ({PTE_BYTES} B each) and {tasks} active tasks{per_page} "
                             f"({TASK_BYTES} B each) need about {_bytes(per_trial)} per trial, "
                             f"{_bytes(per_trial * MIN_BATCH_TRIALS)} per batch of {MIN_BATCH_TRIALS} "
                             f"trials; at most {_bytes(MAX_BATCH_BYTES)} per batch is allowed (about "
                             f"{MAX_BATCH_BYTES // (MIN_BATCH_TRIALS * PTE_BYTES)} PTEs with few active tasks)")
        return self

    @property
    def n_active(self) -> int:
        """Tasks 1..n_active touch the page ("all": every task that maps it)."""
        return self.mapcount if self.active == "all" else self.active

    def _page_config(self) -> dict:
        return {"kind": self.kind, "mapcount": self.mapcount, "active": self.active,
                "access_rate": format_rate(self.access_rate)}

    def page_class(self) -> PageClass:
        return PageClass(count=getattr(self, "count", 1), file=self.kind == "file",
                         mapcount=self.mapcount, active=self.n_active,
                         access_mean_ns=1.0 / self.access_rate if self.access_rate > 0 else 0.0)


class Page(_PageLike):
    """The page of a page-level trial (MODEL.md 1.1)."""

    kind: Literal["anon", "file"]
    mapcount: int = Field(ge=1)
    # "all" follows mapcount, so a sweep over mapcount keeps every task active.
    active: Active = "all"
    access_rate: Rate = "1/us"

    def to_config(self) -> dict:
        return self._page_config()


class BlockClass(_PageLike):
    """``count`` pages alike in a block; unlike a page-level page, one may be unmapped."""

    count: int = Field(ge=1)
    kind: Literal["anon", "file"]
    mapcount: int = Field(ge=0)  # 0: page cache nobody maps
    active: Active = "all"
    access_rate: Rate = "0"  # block pages are cold unless said otherwise

    def to_config(self) -> dict:
        return {"count": self.count, **self._page_config()}


class Transient(_Model):
    """Short references from other kernel paths: Poisson(rate), each held for ``hold``."""

    rate: Rate = "1000/s"
    hold: Distribution = "1us"

    def to_config(self) -> dict:
        return {"rate": format_rate(self.rate), "hold": self.hold.to_config()}


_TAIL = [{"weight": 0.999, "dist": "uniform", "low": "0.1us", "high": "0.3us"},
         {"weight": 0.001, "dist": "exp", "mean": "1ms"}]
# The starting values of MODEL.md 1.7, identical to configs/thread-2018.toml (a test keeps them so).
DEFAULT_TIMING: dict[str, Any] = {
    "unmap_pte": "1us",
    "pre_freeze": "0.3us",
    "freeze_hold": "0.2us",
    "copy": "0.5us",
    "remap_pte": "1us",
    "fault_entry": {"dist": "empirical",
                    "points": [[0.0, "0.6us"], [0.5, "1us"], [0.9, "2us"], [0.99, "5us"], [1.0, "10us"]]},
    "ptl_hold": {"dist": "mixture", "components": _TAIL},
    "drop_hold": {"dist": "mixture", "components": _TAIL},
    "noref_gap": {"dist": "mixture", "components": _TAIL},
    "lock_hold": {"dist": "mixture", "components": _TAIL},
    "wake_latency": {"dist": "mixture", "components": [
        {"weight": 0.99, "dist": "exp", "mean": "30us"},
        {"weight": 0.01, "dist": "uniform", "low": "1ms", "high": "10ms"}]},
    "free_delay": "1us",
    "retry_gap": "1us",
    "outer_gap": "0.5ms",
}


# MODEL.md names a parameter "copy", which shadows the deprecated BaseModel.copy(); harmless here
# (this package uses model_copy), so the field keeps the spec's name. pydantic warns once, when the
# class is created, and the warning is silenced for that statement only: importing this module
# leaves the program's warning filters as they were.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "copy" in "Timing" shadows', category=UserWarning)

    class Timing(_Model):
        """One distribution per timing parameter of MODEL.md 1.2 (not "access": that is the page's)."""

        unmap_pte: Distribution = Field(default=DEFAULT_TIMING["unmap_pte"])
        pre_freeze: Distribution = Field(default=DEFAULT_TIMING["pre_freeze"])
        freeze_hold: Distribution = Field(default=DEFAULT_TIMING["freeze_hold"])
        copy: Distribution = Field(default=DEFAULT_TIMING["copy"])
        remap_pte: Distribution = Field(default=DEFAULT_TIMING["remap_pte"])
        fault_entry: Distribution = Field(default=DEFAULT_TIMING["fault_entry"])
        ptl_hold: Distribution = Field(default=DEFAULT_TIMING["ptl_hold"])
        drop_hold: Distribution = Field(default=DEFAULT_TIMING["drop_hold"])
        noref_gap: Distribution = Field(default=DEFAULT_TIMING["noref_gap"])
        lock_hold: Distribution = Field(default=DEFAULT_TIMING["lock_hold"])
        wake_latency: Distribution = Field(default=DEFAULT_TIMING["wake_latency"])
        free_delay: Distribution = Field(default=DEFAULT_TIMING["free_delay"])
        retry_gap: Distribution = Field(default=DEFAULT_TIMING["retry_gap"])
        outer_gap: Distribution = Field(default=DEFAULT_TIMING["outer_gap"])

        def to_config(self) -> dict:
            return {n: getattr(self, n).to_config() for n in TIMING_NAMES}


class Budget(_Model):
    passes: int = Field(default=10, ge=1)
    trylock_passes: int = Field(default=3, ge=0)
    timeout: PositiveDuration = "120s"
    max_attempts: int = Field(default=1000, ge=1)

    def to_config(self) -> dict:
        return {"passes": self.passes, "trylock_passes": self.trylock_passes,
                "timeout": format_ns(self.timeout, exact=True), "max_attempts": self.max_attempts}


class Block(_Model):
    """A memory block (MODEL.md 1.6). Pages are laid out in class order; pages of the block not
    covered by a class are free and need no migration, so they are not simulated."""

    pages: int = Field(default=32768, ge=1)  # 128 MiB of 4 KiB pages
    batch_pages: int = Field(default=256, ge=1)
    classes: list[BlockClass] = Field(min_length=1)

    @model_validator(mode="after")
    def _fits(self):
        total = sum(c.count for c in self.classes)
        if total > self.pages:
            raise FieldError("classes", f"{total} pages",
                             "the classes' counts must add up to at most {0} (%d)" % self.pages, refs=("pages",))
        return self

    def to_config(self) -> dict:
        return {"pages": self.pages, "batch_pages": self.batch_pages,
                "classes": [c.to_config() for c in self.classes]}


class Strategy(_Model):
    """A waiting strategy of MODEL.md 1.4, with its options and a label naming its results.

    Which names exist, which options each takes, their valid values and defaults: the strategy
    registry (mcexplore.strategies), read at validation time (a test may swap it). An option is a
    field here (``recheck``, ``flag_from``); the registry says which strategy owns it.
    """

    name: str
    label: str | None = None
    recheck: bool | None = None
    flag_from: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, v):
        return {"name": v} if isinstance(v, str) else v

    @field_validator("name", mode="before")
    @classmethod
    def _known(cls, v):
        names = registry.names()
        if not isinstance(v, str) or v not in names:
            raise FieldError((), v, "must be " + _choices(names))
        return v

    @classmethod
    def option_fields(cls) -> tuple[str, ...]:
        """The fields that are strategy options (every field but name and label)."""
        return tuple(f for f in cls.model_fields if f not in ("name", "label"))

    @model_validator(mode="after")
    def _options(self):
        owners = registry.option_owners()
        row = registry.get(self.name)
        for opt in self.option_fields():
            value = getattr(self, opt)
            if value is None:
                continue
            if owners.get(opt) != self.name:
                whose = f"belongs to strategy '{owners[opt]}' only" if opt in owners else \
                    "belongs to no strategy"
                raise FieldError(opt, value, f"option '{opt}' {whose}; '{self.name}' "
                                 f"takes {self._options_of(self.name)}")
            allowed = next(o.values for o in row.options if o.name == opt)
            if value not in allowed:
                raise FieldError(opt, value, "must be " + _choices(allowed))
        if self.label is not None and not _LABEL_RE.match(self.label):
            raise FieldError("label", self.label, "a label is letters, digits, '_', '.' or '-' "
                             "(it names result columns and files)")
        if self.label is None:
            object.__setattr__(self, "label", self.name)
        for o in row.options:
            if o.name in type(self).model_fields and getattr(self, o.name) is None:
                object.__setattr__(self, o.name, o.default)
        return self

    @classmethod
    def _options_of(cls, name: str) -> str:
        opts = [o.name for o in registry.get(name).options]
        if not opts:
            return "no options"
        return ("only the option " if len(opts) == 1 else "only the options ") + ", ".join(opts)

    def to_config(self, with_label: bool = True) -> dict:
        d = {"name": self.name}
        if with_label:
            d["label"] = self.label
        for o in registry.get(self.name).options:
            if o.name in type(self).model_fields:
                d[o.name] = getattr(self, o.name)
        return d


def _all_strategies() -> list[dict]:
    """The default strategy list: every strategy of the registry in use."""
    return [{"name": s} for s in registry.names()]


class Scenario(_Model):
    """A validated config. Build one with load_scenario() or Scenario.from_dict()."""

    name: str = "unnamed"
    description: str = ""
    level: Literal["page", "block"] = "page"
    page: Page | None = None
    transient: Transient = Field(default_factory=Transient)
    timing: Timing = Field(default_factory=Timing)
    budget: Budget = Field(default_factory=Budget)
    block: Block | None = None
    strategies: list[Strategy] = Field(default_factory=_all_strategies)

    _notes: dict[str, Note] = PrivateAttr(default_factory=dict)
    # The compiled World, built on first use (world()); never part of equality.
    _world_cache: _WorldCache = PrivateAttr(default_factory=_WorldCache)

    @field_validator("strategies", mode="before")
    @classmethod
    def _strategy_list(cls, v):
        if isinstance(v, str):
            v = [s.strip() for s in v.split(",") if s.strip()]
        if isinstance(v, (list, tuple)) and len(v) == 0:
            raise ValueError("give at least one strategy (one of " + ", ".join(registry.names()) + ")")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        if self.level == "page" and self.page is None:
            raise FieldError("page", _MISSING, "level = 'page' needs a [page] table "
                             "(kind, mapcount, active, access_rate)")
        if self.level == "block" and self.block is None:
            raise FieldError("block", _MISSING, "level = 'block' needs a [block] table "
                             "(pages, batch_pages, classes)")
        seen: dict[str, int] = {}
        for i, s in enumerate(self.strategies):
            if s.label in seen:
                raise FieldError(("strategies", i, "label"), s.label,
                                 f"labels must be unique (strategies.{seen[s.label]} has it too); "
                                 "give one of them another label = \"...\"")
            seen[s.label] = i
        try:
            transient.window(self.transient.rate, self.transient.hold.compile().max_ns,
                             self.budget.timeout)
        except transient.LayoutError as e:
            raise FieldError(("transient", "rate"), format_rate(self.transient.rate), str(e)) from None
        return self

    # ---- construction

    @classmethod
    def from_dict(cls, raw: Mapping, source: str | None = None) -> "Scenario":
        """Validate a config dict (as tomllib reads it); wrappers {value, estimate, why} allowed."""
        return _build(raw, {}, source)

    # ---- queries

    @property
    def notes(self) -> dict[str, Note]:
        """Provenance by dotted path ("timing.fault_entry" -> Note(estimate=True, why=...))."""
        return dict(self._notes)

    def estimates(self) -> list[str]:
        """Dotted paths of the values marked as estimates."""
        return [k for k, n in self._notes.items() if n.estimate]

    def labels(self) -> list[str]:
        return [s.label for s in self.strategies]

    def strategy(self, label: str | None = None) -> Strategy:
        if label is None:
            if len(self.strategies) != 1:
                raise ScenarioError(f"strategies: name one label of {', '.join(self.labels())}")
            return self.strategies[0]
        for s in self.strategies:
            if s.label == label:
                return s
        raise ScenarioError(f"strategies: {label!r} is not a label of this scenario "
                            f"(labels: {', '.join(self.labels())})")

    def dist(self, name: str):
        """The distribution of a timing name of DIST_NAMES ("access" is not one: see compile)."""
        return getattr(self.timing, name)

    # ---- derived scenarios

    def set(self, path: str, value) -> "Scenario":
        """A copy with the field at dotted ``path`` set to ``value`` (config form), validated.

        ``value`` is what a config would hold there ("0.5us", 2, {dist = "exp", mean = "1ms"}, a
        model instance...). The note of the changed value, if any, is dropped. For ``strategies``
        a list or a comma-separated string of labels of this scenario (kept with their options)
        or strategy names is accepted.
        """
        return self.set_many({path: value})

    def set_many(self, changes: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> "Scenario":
        """Like set() for several paths at once: every (path, value) is written into the config
        form first, in the order given, and the result is validated once, at the end.

        So a change valid only once all of its values are in (say level and block, or mapcount 1
        with active 201 turned into mapcount 1 with active 1) needs no particular order and no
        retries; a later value for a path overrides an earlier one. A bad path is reported as soon
        as it is met, a bad value by the field it reaches (ScenarioError, one line per problem).
        The result shares this scenario's compiled world (world()) when every field the world
        depends on is unchanged (say only strategies, name or description were set).
        """
        items = list(changes.items()) if isinstance(changes, Mapping) else list(changes)
        raw = self._raw()
        notes = dict(self._notes)
        for path, value in items:
            parts = _split_path(path)
            value = _to_plain(value)
            if parts == ["strategies"]:
                value = self._resolve_strategies(value)
            _assign(raw, parts, value, Scenario)
            dotted = ".".join(parts)
            notes = {k: n for k, n in notes.items()
                     if not (k == dotted or k.startswith(dotted + ".") or dotted.startswith(k + "."))}
        out = _build(raw, notes, None)
        if out._same_world(self):
            out._world_cache = self._world_cache
        return out

    def with_strategies(self, labels: Iterable[str] | str) -> "Scenario":
        """A copy keeping only the strategies with these labels, in this order."""
        if isinstance(labels, str):
            labels = [x.strip() for x in labels.split(",") if x.strip()]
        chosen = [self.strategy(lb).to_config() for lb in labels]
        return self.set("strategies", chosen)

    def _resolve_strategies(self, value):
        if isinstance(value, str):
            value = [x.strip() for x in value.split(",") if x.strip()]
        if not isinstance(value, list):
            return value
        mine = {s.label: s.to_config() for s in self.strategies}
        return [mine.get(v, v) if isinstance(v, str) else v for v in value]

    # ---- serialisation

    def _raw(self) -> dict:
        d: dict[str, Any] = {"name": self.name, "description": self.description, "level": self.level}
        if self.page is not None:
            d["page"] = self.page.to_config()
        d["transient"] = self.transient.to_config()
        d["timing"] = self.timing.to_config()
        d["budget"] = self.budget.to_config()
        if self.block is not None:
            d["block"] = self.block.to_config()
        d["strategies"] = [s.to_config() for s in self.strategies]
        return d

    def to_dict(self, notes: bool = True) -> dict:
        """JSON-able canonical form (units normalised, defaults written out); loads back as a
        config. With ``notes``, noted values are wrapped as {value, estimate, why} again."""
        d = self._raw()
        if notes:
            for path, note in self._notes.items():
                _wrap(d, path.split("."), note)
        return d

    def to_toml(self) -> str:
        """The canonical form as TOML (for `mcexplore show` and for saving a derived scenario)."""
        return _to_toml(self.to_dict())

    def config_hash(self, label: str | None = None) -> str:
        """First 16 hex digits of the sha256 of the canonical JSON of what the simulation depends
        on: not name, description or notes, and not the table the level does not use. With a
        ``label``: the world plus that one strategy's name and options (not its label), so one
        strategy's results keep their key whichever other strategies run beside it."""
        d = self.to_dict(notes=False)
        for k in ("name", "description"):
            d.pop(k)
        d.pop("block" if self.level == "page" else "page", None)
        if label is not None:
            d["strategies"] = [self.strategy(label).to_config(with_label=False)]
        text = json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # ---- compilation

    def world(self) -> World:
        """The compiled world (distributions, page or block classes, budget, transient rate):
        everything of a Compiled but the strategy, built once per scenario object and shared by
        every compile() of it."""
        cache = self._world_cache
        if cache.world is None:
            cache.world = World.of(self)
        return cache.world

    def _same_world(self, other: "Scenario") -> bool:
        """Whether ``other`` compiles to the same world (every field but name, description and
        strategies equal)."""
        return all(getattr(self, f) == getattr(other, f)
                   for f in type(self).model_fields if f not in _NOT_WORLD)

    def compile(self, label: str | None = None) -> Compiled:
        """The engines' form for one strategy (``label`` may be omitted if there is only one):
        the scenario's world() with that strategy's code and options."""
        strat = self.strategy(label)
        return self.world().compiled(
            strategy=registry.get(strat.name).code,
            recheck=strat.recheck is not False,  # a pte_wait option; True for the others
            flag_from_unmap_end=strat.flag_from == "unmap_end",  # a flag_spin option
        )

    def compile_all(self) -> dict[str, Compiled]:
        """compile(label) for every label, in order (one world for all)."""
        return {lb: self.compile(lb) for lb in self.labels()}


def _build(raw: Mapping, notes: dict, source: str | None) -> Scenario:
    """Validate a raw config: notes taken off first, every problem one line of a ScenarioError."""
    errors: list[str] = []
    found: dict[str, Note] = {}
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"a config is a table of keys, not {type(raw).__name__}", source)
    clean = _strip_notes(dict(raw), [], found, errors)
    if errors:
        raise ScenarioError(errors, source)
    try:
        s = Scenario.model_validate(clean)
    except ValidationError as e:
        raise ScenarioError(_format_errors(e, Scenario), source) from None
    s._notes = {**notes, **found}
    return s
