"""Transient references as one Poisson process, in a form every engine can draw identically.

Where it sits: beside mcexplore.params (the compiled scenario). ``layout(compiled)`` turns the
scenario's rate and hold distribution into integers; mcexplore.engines.pack appends them to the
kernels' parameter block and the numpy engine reads them directly.

The construction (MODEL.md 1.1 and 1.4; docs/model.md, "Transient references"). Time is cut into
windows of ``window_ns`` = W: window w is [w W, (w + 1) W), w any integer (negative windows hold
the references already taken at time 0: the process is stationary). Window w holds N_w arrivals,
N_w ~ Poisson(rho W), drawn from the 64-bit uniform u1 of the draw (TRANSIENT, page, w, sub 0):
N_w = the number of thresholds t_j <= u1, t_j = round(2**64 P(N <= j)). Arrival j of window w
(j = 0, 1, ...) comes at s = w W + floor(u1 W / 2**64), u1 from the draw (TRANSIENT, page, w, sub
1 + 2j), and is held for h from ``transient_hold`` sampled from the draw (TRANSIENT, page, w,
sub 2 + 2j). A refcount check at F fails iff some arrival has s < F <= s + h (taken at F: misses
the check; released at F: still counted). Every hold is at most ``hold_max_ns`` = H, so only
arrivals with s >= F - H can matter: the windows floor((F - H) / W) .. floor((F - 1) / W), at most
two because W >= H. The window index w goes into the counter's k word (low 32 bits) and the top
12 bits of its i word (bits 32..43 of w), so every draw is a pure function of (seed, trial, page,
w, j) and two checks that look at the same window see the same references: one long hold fails
several consecutive checks, as it does in the kernel.

W = max(H, sqrt(H / rho)) minimises the expected work of a check (about 1 + H / W window draws and
rho (W + H) arrival draws).

The engines used to approximate this by one independent Bernoulli draw per check (the stationary
probability 1 - exp(-rho E[h])), which is wrong whenever one hold can span several checks. It was
not kept as an option: drawing the process costs no measurable time on the shipped scenario (see
docs/model.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .params import DIST_INDEX

from .constants import SUB_BITS, WINDOW_I_BITS, Transient

MODEL_NONE, MODEL_PROCESS = int(Transient.NONE), int(Transient.PROCESS)
# Arrival j of a window uses subs 1 + 2j and 2 + 2j of a 20-bit field.
MAX_ARRIVALS = (1 << (SUB_BITS - 1)) - 2
# Bits of the window index in a draw's counter (32 in k, the rest in i).
WINDOW_BITS = 32 + WINDOW_I_BITS


class LayoutError(ValueError):
    """The process cannot be drawn as asked (too many references per window, too long a budget)."""


@dataclass(frozen=True)
class Layout:
    model: int  # MODEL_*
    window_ns: int = 0  # W
    hold_max_ns: int = 0  # H: no hold is longer
    thresholds: np.ndarray = None  # uint64, increasing: N_w = #{j: thresholds[j] <= u1}


def _prob_u64(p_low: float, p_high: float) -> int:
    """round(2**64 * p) for p = p_low = 1 - p_high, computed from whichever side is accurate."""
    if p_low < 0.5:
        return int(round(math.ldexp(p_low, 64)))
    return (1 << 64) - int(round(math.ldexp(p_high, 64)))


def hold_of(compiled):
    return compiled.dists[DIST_INDEX["transient_hold"]]


def layout(compiled) -> Layout:
    """The integers the engines need to draw the transient process of ``compiled``."""
    rho = float(compiled.transient_rate_per_ns)
    if rho <= 0.0:
        return Layout(MODEL_NONE)
    H = int(hold_of(compiled).max_ns)
    if H <= 0:
        return Layout(MODEL_NONE)
    # The Poisson cdf and survival function from scipy.special (scipy.stats costs 0.5 s to import).
    from scipy.special import pdtr, pdtrc

    W, jmax = window(rho, H, compiled.timeout_ns)
    lam = rho * W
    j = np.arange(jmax + 1)
    thr = []
    for c, s in zip(pdtr(j, lam).tolist(), pdtrc(j, lam).tolist()):
        t = _prob_u64(c, s)
        if t >= 1 << 64:
            break
        thr.append(t)
    return Layout(MODEL_PROCESS, W, H, np.array(thr, dtype=np.uint64))


def window(rho: float, H: int, timeout_ns: float) -> tuple[int, int]:
    """(W, the largest count the thresholds need) for rate rho and longest hold H; LayoutError
    when the process cannot be drawn that way (Scenario validation calls this to say so early)."""
    if rho <= 0.0 or H <= 0:
        return 0, 0
    W = max(int(H), int(math.ceil(math.sqrt(H / rho))), 1)
    lam = rho * W
    # Counts up to lam + 40 standard deviations: the tail beyond is far below 2**-64.
    jmax = int(lam + 40.0 * math.sqrt(lam) + 100)
    if jmax > MAX_ARRIVALS:
        raise LayoutError(
            f"with holds up to {int(H)} ns the references come {lam:.3g} to a window of {W} ns on "
            f"average, and at most about {MAX_ARRIVALS // 2} can be drawn (lower the rate or the "
            "longest hold)")
    if (int(timeout_ns) + 2 * W) // W >= 1 << (WINDOW_BITS - 1):
        raise LayoutError(f"the budget of {int(timeout_ns)} ns spans more than 2**43 windows of "
                          f"{W} ns (shorten budget.timeout)")
    return W, jmax


def window_key(w):
    """The (k, i) counter words of window w (two's complement in WINDOW_BITS bits)."""
    w = np.asarray(w, dtype=np.int64)
    return (w & 0xFFFFFFFF), ((w >> 32) & ((1 << WINDOW_I_BITS) - 1))
