"""Hand-built compiled scenarios for engine tests (independent of the config layer)."""

import math

from mcexplore import strategies
from mcexplore.params import (DIST_NAMES, Compiled, PageClass, const,
                              exponential)

US = 1000.0


def base_timing() -> dict:
    """MODEL.md 1.7's starting values as constants, with an exponential wake latency."""
    return {
        "unmap_pte": const(1 * US), "pre_freeze": const(0.3 * US), "freeze_hold": const(0.2 * US),
        "copy": const(0.5 * US), "remap_pte": const(1 * US), "fault_entry": const(1 * US),
        "ptl_hold": const(0.2 * US), "drop_hold": const(0.2 * US), "noref_gap": const(0.2 * US),
        "lock_hold": const(0.2 * US), "wake_latency": exponential(30 * US),
        "free_delay": const(1 * US), "retry_gap": const(1 * US), "outer_gap": const(500 * US),
        "transient_hold": const(1 * US),
    }


def transient_rate(p_held: float, hold_ns: float = 1 * US) -> float:
    """The rate (per ns) at which references held for hold_ns are held at an instant with
    probability p_held (stationary M/G/inf: p = 1 - exp(-rate * hold))."""
    return -math.log1p(-p_held) / hold_ns if p_held else 0.0


def small(strategy="ref", *, M=3, A=2, access_us=1.0, file=True, recheck=True, flag_unmap_end=False,
          max_attempts=50, timeout_ns=10**9, transient=0, **over):
    base = base_timing()
    base["access"] = exponential(access_us * US) if access_us else const(0)
    base.update(over)
    return Compiled(
        strategy=strategies.get(strategy).code, dists=[base[n] for n in DIST_NAMES],
        page=PageClass(1, file, M, A, access_us * US if access_us else 0.0),
        recheck=recheck, flag_from_unmap_end=flag_unmap_end, max_attempts=max_attempts,
        timeout_ns=timeout_ns,
        transient_rate_per_ns=transient_rate(transient, base["transient_hold"].mean_ns))
