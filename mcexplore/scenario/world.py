"""The compiled world of a scenario: everything of ``params.Compiled`` that does not depend on the
strategy (the compiled distributions, the page or the block's page classes, the budget, the
transient rate), built once per Scenario object and shared by every strategy it compiles.

Compiling a distribution can be expensive (a lognormal is tabulated, a mixture flattened), and
every strategy of a run sees the same timings, so ``Scenario.compile(label)`` and
``compile_all()`` take the world from ``Scenario.world()`` and add only the strategy's code and
options. Every ``Compiled`` of one scenario therefore holds the same ``CompiledDist`` and
``PageClass`` objects (in lists of its own); engines treat them as read-only.

Where it sits: above mcexplore.params, below mcexplore.scenario.models; it reads a scenario by its
attributes and imports no other module of the package.
"""

from dataclasses import dataclass

from .. import params
from ..params import DIST_NAMES, Compiled, CompiledDist, PageClass


@dataclass(frozen=True)
class World:
    """The strategy-independent part of a scenario's ``params.Compiled``."""

    dists: tuple[CompiledDist, ...]  # in DIST_NAMES order
    page: PageClass
    block: tuple[PageClass, ...] | None
    batch_pages: int
    passes: int
    trylock_passes: int
    timeout_ns: int
    max_attempts: int
    transient_rate_per_ns: float

    @classmethod
    def of(cls, scenario) -> "World":
        """Compile the world of a (validated) Scenario."""
        if scenario.level == "page":
            page = scenario.page.page_class()
            block = None
            rate = scenario.page.access_rate
        else:
            block = tuple(c.page_class() for c in scenario.block.classes)
            page = PageClass()
            # One "access" distribution per Compiled: at block level it is the hottest class's.
            # Each PageClass also carries its own access_mean_ns, which a block engine should use.
            rate = max((c.access_rate for c in scenario.block.classes if c.n_active > 0), default=0.0)
        access = params.exponential(1.0 / rate) if rate > 0 else params.const(0)
        named = {"access": access, "transient_hold": scenario.transient.hold.compile()}
        dists = tuple(named[n] if n in named else getattr(scenario.timing, n).compile() for n in DIST_NAMES)
        budget = scenario.budget
        return cls(
            dists=dists,
            page=page,
            block=block,
            batch_pages=scenario.block.batch_pages if scenario.block is not None else 256,
            passes=budget.passes,
            trylock_passes=budget.trylock_passes,
            timeout_ns=int(round(budget.timeout)),
            max_attempts=budget.max_attempts,
            transient_rate_per_ns=float(scenario.transient.rate),
        )

    def dist(self, name: str) -> CompiledDist:
        """The compiled distribution of a name of DIST_NAMES (including "access")."""
        return self.dists[DIST_NAMES.index(name)]

    def compiled(self, strategy: int, recheck: bool = True, flag_from_unmap_end: bool = False) -> Compiled:
        """This world with one strategy: what an engine runs."""
        return Compiled(
            strategy=strategy,
            dists=list(self.dists),
            page=self.page,
            recheck=recheck,
            flag_from_unmap_end=flag_from_unmap_end,
            passes=self.passes,
            trylock_passes=self.trylock_passes,
            timeout_ns=self.timeout_ns,
            max_attempts=self.max_attempts,
            transient_rate_per_ns=self.transient_rate_per_ns,
            block=list(self.block) if self.block is not None else None,
            batch_pages=self.batch_pages,
        )


class _WorldCache:
    """Where a Scenario keeps its World once built (a private attribute).

    Always equal to another cache, so that whether a scenario has compiled yet never changes
    ``==`` between scenarios (pydantic compares private attributes too).
    """

    __slots__ = ("world",)

    def __init__(self, world: World | None = None):
        self.world = world

    def __eq__(self, other):
        return isinstance(other, _WorldCache)

    __hash__ = None

    def __reduce__(self):
        # A pickled or deep-copied scenario rebuilds its world when it next compiles.
        return (_WorldCache, ())
