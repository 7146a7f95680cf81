"""Tilted worlds for importance sampling: which parameters may be tilted, the tilted scenario, and
every trial's likelihood ratio from the integer statistics the engines count.

Where it sits: above the scenario layer and mcexplore.params, below the engines' callers
(mcexplore.rare, the API and the CLI). The engines never see a tilt as such: they run the tilted
world's ``Compiled`` like any other, and its ``tilt`` (a ``params.TiltLayout``) tells them which
draws to count. Everything that decides the weight is here, on the host, in float64.

What can be tilted (docs/analysis.md, "Rare events"):

* the weights of a mixture's components (``timing.NAME.components.I.weight``; nested mixtures by
  their own path): the other components keep their proportions. A trial counts, per component, the
  draws that landed in it; component g's factor is (p_g / q_g) per draw, p_g and q_g the exact
  probabilities of its leaves under the two worlds' 64-bit thresholds;
* the mean of an exponential, alone or as a mixture component (``timing.NAME.mean``,
  ``timing.NAME.components.I.mean``), and the page's ``page.access_rate`` (its tasks' accesses
  are exponential): a trial counts the draws n and the sum S of their sampled values (whole ns).
  The sampled value is the floor of an exponential, a geometric variable, so the factor is
  ((1 - e^(-1/m)) / (1 - e^(-1/m')))^n e^(-S (1/m - 1/m')) for means m (untilted) and m'
  (tilted). The sampler's tables implement the floored exponential to within the linear
  interpolation of -ln on 8192 cells (mcexplore.params.exp_component): a relative error of the
  density of about 1e-4 at most, so each tilted exponential draw carries up to that relative error
  into the weight. Named, documented and optional: mixture weights and the transient rate are
  exact;
* ``transient.rate``: a trial counts the transient windows its refcount checks looked at (each
  once) and their arrivals; per window of width W with N arrivals the factor is
  (rho / rho')^N e^(-(rho - rho') W) (the window counts are Poisson to the 2**-64 of their
  thresholds).

So the log weight of a trial is linear in its statistics: ``log w = sum_s coef[s] * stat[s]``
(``log_weights``), summed in a fixed order, so a weight computed here from any engine's records and
one computed from the trial's replay are the same float64, bit for bit.

Importance sampling runs at page level only; a block-level tilt is refused (TiltError).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from . import transient
from .constants import DIST_NAMES, IS_MAX_SLOTS
from .params import LEAF_EXP, Compiled, TiltLayout


class TiltError(ValueError):
    """A tilt that cannot be run: the message names the path, the value and what is valid."""


@dataclass(frozen=True)
class Param:
    """A tiltable parameter of a scenario: its config path, what it is and its value there.

    kind: "weight" (a mixture component's weight, in [0, 1]), "mean" (an exponential's mean, ns)
    or "rate" (per ns: page.access_rate, transient.rate). ``dist``: the timing name it belongs to
    ("access" for the access rate, None for the transient rate); ``siblings``: a weight's
    mixture, the paths of all its components' weights in order; ``stats``: the prefixes of the
    statistics ``layout`` names for it when it is counted ("drop_hold[1]": its ".n" and ".sum_ns";
    a weight of a nested mixture has one per component it covers; "transient" for the rate).
    """

    path: str
    kind: str
    value: float
    dist: str | None = None
    siblings: tuple = ()
    stats: tuple = ()


def _walk_dist(d, prefix: str, name: str, out: list, flat: int, multi: bool) -> int:
    """Append d's tiltable parameters; ``flat``: the index of d's first component in its
    distribution's flattened mixture (params.CompiledDist.group), ``multi``: whether that has more
    than one. Returns how many flattened components d has."""
    from .scenario.distributions import ExpDist, MixtureDist

    def stat(g: int) -> str:
        return f"{name}[{g}]" if multi else name

    if isinstance(d, MixtureDist):
        paths = tuple(f"{prefix}.components.{i}.weight" for i in range(len(d.components)))
        start = flat
        for i, c in enumerate(d.components):
            first = len(out)
            n = _walk_dist(c, f"{prefix}.components.{i}", name, out, flat, multi)
            if len(d.components) > 1:
                out.insert(first, Param(paths[i], "weight", float(c.weight), name, paths,
                                        tuple(stat(g) for g in range(flat, flat + n))))
            flat += n
        return flat - start
    if isinstance(d, ExpDist) and float(d.mean) > 0:
        out.append(Param(f"{prefix}.mean", "mean", float(d.mean), name, stats=(stat(flat),)))
    return 1


def tiltable(scenario) -> list[Param]:
    """Every parameter of ``scenario`` a tilt may change, in config order."""
    from .scenario.models import TIMING_NAMES

    out: list[Param] = []
    for name in TIMING_NAMES:
        d = getattr(scenario.timing, name)
        _walk_dist(d, f"timing.{name}", name, out, 0, len(d.weighted()) > 1)
    if scenario.level == "page" and scenario.page.access_rate > 0:
        out.append(Param("page.access_rate", "rate", float(scenario.page.access_rate), "access",
                         stats=("access",)))
    if scenario.transient.rate > 0:
        out.append(Param("transient.rate", "rate", float(scenario.transient.rate), None,
                         stats=("transient",)))
    return out


def _parse_value(p: Param, value) -> float:
    """A tilt's value in the parameter's own unit (weight, ns, per ns)."""
    from .units import UnitError, parse_duration, parse_rate

    try:
        if p.kind == "weight" or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            v = float(value)  # a number is in the parameter's own unit (weight, ns, per ns)
        elif p.kind == "mean":
            v = float(parse_duration(value))
        else:
            v = float(parse_rate(value))
    except (UnitError, TypeError, ValueError) as e:
        raise TiltError(f"--tilt {p.path}={value!r}: not a valid {p.kind} ({e})") from None
    if p.kind == "weight" and not 0.0 < v < 1.0:
        raise TiltError(f"--tilt {p.path}={value!r}: a tilted weight must be in (0, 1) (the other "
                        "components keep their proportions, and none may vanish)")
    if p.kind != "weight" and not (v > 0 and math.isfinite(v)):
        raise TiltError(f"--tilt {p.path}={value!r}: must be positive")
    return v


def resolve(scenario, changes) -> dict[str, float]:
    """Tilt changes (``{path: value}`` or ``["path=value", ...]``) as ``{path: value}`` in each
    parameter's unit, every path checked against ``tiltable(scenario)``."""
    if scenario.level != "page":
        raise TiltError("importance sampling runs at page level only (this scenario is block level)")
    items = []
    for ch in (changes.items() if isinstance(changes, dict) else changes):
        if isinstance(ch, str):
            if "=" not in ch:
                raise TiltError(f"--tilt {ch!r} is not valid: write PATH=VALUE, e.g. "
                                "timing.drop_hold.components.1.weight=0.3")
            path, _, val = ch.partition("=")
            items.append((path.strip(), val.strip()))
        else:
            items.append((str(ch[0]).strip(), ch[1]))
    params = {p.path: p for p in tiltable(scenario)}
    out: dict[str, float] = {}
    for path, val in items:
        if path not in params:
            valid = ", ".join(params) or "none (no mixture, exponential or rate in this scenario)"
            raise TiltError(f"--tilt {path}: not a tiltable parameter of this scenario (valid: {valid})")
        out[path] = _parse_value(params[path], val)
    return out


def tilted_scenario(scenario, changes):
    """The scenario of the tilted world: ``changes`` applied (a mixture's other weights scaled so
    that they keep their proportions and the weights still sum to 1)."""
    from .units import format_ns, format_rate

    vals = resolve(scenario, changes)
    params = {p.path: p for p in tiltable(scenario)}
    sets: dict[str, object] = {}
    weights: dict[tuple, dict[str, float]] = {}
    for path, v in vals.items():
        p = params[path]
        if p.kind == "weight":
            weights.setdefault(p.siblings, {})[path] = v
        elif p.kind == "mean":
            sets[path] = format_ns(v, exact=True)
        else:
            sets[path] = format_rate(v)
    for sib, fixed in weights.items():
        if len(fixed) == len(sib):  # every weight given: they are the mixture, normalised
            total = sum(fixed.values())
            for s in sib:
                sets[s] = fixed[s] / total
            continue
        cur = {s: params[s].value for s in sib}
        rest = sum(w for s, w in cur.items() if s not in fixed)
        left = 1.0 - sum(fixed.values())
        if left <= 0 or rest <= 0:
            raise TiltError(f"--tilt {', '.join(fixed)}: the tilted weights of one mixture must leave "
                            f"room for its other components (they sum to {sum(fixed.values()):.6g})")
        for s in sib:
            sets[s] = fixed[s] if s in fixed else cur[s] * left / rest
    try:
        return scenario.set_many(sets)
    except Exception as e:  # a ScenarioError: say it is the tilt's
        raise TiltError(f"the tilted scenario is not valid: {e}") from None


def _same(a, b) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f))
               for f in ("cum", "kind", "a", "b", "shift", "exp_mean", "group"))


def _tiltable_dist(d) -> bool:
    return int(d.group.max()) > 0 or bool((d.kind == LEAF_EXP).any())


def layout(p: Compiled, q: Compiled, track: bool = False) -> TiltLayout:
    """The statistics a run of the tilted world ``q`` counts so that its weights give estimates for
    the world ``p`` (same scenario and strategy, tilted parameters only). ``track``: also count
    what every tiltable parameter would need, tilted or not (the cross-entropy method estimates
    each from them; an untilted one's statistics have coefficient 0)."""
    slots_of: dict[int, tuple] = {}
    coef: list[float] = []
    names: list[str] = []
    for d, (dp, dq) in enumerate(zip(p.dists, q.dists)):
        name = DIST_NAMES[d]
        if _same(dp, dq) and not (track and name != "transient_hold" and _tiltable_dist(dp)):
            continue
        if name == "transient_hold":
            raise TiltError("transient.hold cannot be tilted (tilt transient.rate instead)")
        seg = dp.kind != LEAF_EXP
        same_shape = (dp.nleaf == dq.nleaf and np.array_equal(dp.group, dq.group)
                      and np.array_equal(dp.kind, dq.kind)
                      and np.array_equal(dp.a[seg], dq.a[seg]) and np.array_equal(dp.b[seg], dq.b[seg]))
        if not same_shape:
            raise TiltError(f"{name}: the tilt changes more than its mixture weights and exponential "
                            "means (a weight too small to keep a leaf at 64-bit resolution?)")
        G = int(dp.group.max()) + 1
        Pp = np.bincount(dp.group, weights=dp.weight, minlength=G)
        Pq = np.bincount(dq.group, weights=dq.weight, minlength=G)
        base = len(coef)
        count = base + dp.group
        total = np.full(dp.nleaf, -1, dtype=np.int64)
        for g in range(G):
            # A component with no leaf (a weight below 2**-65) is never drawn: its count stays 0.
            coef.append(math.log(Pp[g]) - math.log(Pq[g]) if Pp[g] > 0 else 0.0)
            names.append(f"{name}[{g}].n" if G > 1 else f"{name}.n")
        for leaf in np.nonzero(~seg)[0]:
            mp, mq = float(dp.exp_mean[leaf]), float(dq.exp_mean[leaf])
            if mp == mq and not track:
                continue
            g = int(dp.group[leaf])
            # The floored exponential (geometric) of mean m has P(v) = e^(-v/m) (1 - e^(-1/m)).
            coef[base + g] += math.log(-math.expm1(-1.0 / mp)) - math.log(-math.expm1(-1.0 / mq))
            total[leaf] = len(coef)
            coef.append(-(1.0 / mp - 1.0 / mq))
            names.append(f"{name}[{g}].sum_ns" if G > 1 else f"{name}.sum_ns")
        slots_of[d] = (count.astype(np.int64), total)
    ts, W = -1, 0
    rp, rq = float(p.transient_rate_per_ns), float(q.transient_rate_per_ns)
    if rp != rq or (track and rp > 0):
        if rp <= 0 or rq <= 0:
            raise TiltError("transient.rate: both the scenario's rate and the tilted one must be positive")
        W = transient.layout(q).window_ns
        if W > 0:
            ts = len(coef)
            coef += [-(rp - rq) * W, math.log(rp) - math.log(rq)]
            names += ["transient.windows", "transient.arrivals"]
    if len(coef) > IS_MAX_SLOTS:
        raise TiltError(f"this tilt needs {len(coef)} statistics per trial (one per mixture component "
                        f"and tilted exponential), at most {IS_MAX_SLOTS}: tilt fewer distributions")
    return TiltLayout(len(coef), slots_of, ts, tuple(coef), tuple(names), W)


def tilted_compiled(scenario, label: str | None, changes, base: Compiled | None = None,
                    track: bool = False) -> Compiled:
    """The ``Compiled`` of strategy ``label`` in the tilted world, with the layout of the
    statistics its trials count (``base``: the untilted one, if already compiled; ``track``: see
    ``layout``)."""
    if scenario.level != "page":
        raise TiltError("importance sampling runs at page level only (this scenario is block level)")
    p = base if base is not None else scenario.compile(label)
    q = tilted_scenario(scenario, changes).compile(label)
    return dataclasses.replace(q, tilt=layout(p, q, track))


def log_weights(lay: TiltLayout, stats) -> np.ndarray:
    """Each trial's log likelihood ratio from its statistics (rows of ``stats``): a fixed-order
    sum over the slots, so the same statistics always give the same float64."""
    stats = np.asarray(stats, dtype=np.int64).reshape(-1, lay.nslot)
    out = np.zeros(len(stats), dtype=np.float64)
    for s, c in enumerate(lay.coef):
        out += c * stats[:, s].astype(np.float64)
    return out


def weights(lay: TiltLayout, stats) -> np.ndarray:
    """Each trial's likelihood ratio (untilted density over tilted) of its statistics."""
    return np.exp(log_weights(lay, stats))


def describe(scenario, changes) -> list[tuple[str, str, str]]:
    """(path, untilted value, tilted value) of every parameter the tilt changes, as text (a
    mixture's rescaled weights included)."""
    from .units import format_ns, format_rate

    def fmt(p: Param, v: float) -> str:
        return f"{v:.6g}" if p.kind == "weight" else format_ns(v) if p.kind == "mean" else format_rate(v, exact=False)

    before = {p.path: p for p in tiltable(scenario)}
    after = {p.path: p for p in tiltable(tilted_scenario(scenario, changes))}
    return [(path, fmt(p, p.value), fmt(p, after[path].value)) for path, p in before.items()
            if path in after and after[path].value != p.value]
