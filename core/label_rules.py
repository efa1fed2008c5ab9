"""The label rules of SPEC §3, in one place: valid read, NDT, log dwell and dwell-time bins.

The rules' definitions and parameters: the statistics job fits NDT and the bin edges with them
(`core.stats_artifact`), and `core.labeler` applies them inside tf.data for the labelling job,
training and the online evaluation. The rules:

- valid read of a click with dwell T seconds: the floor T >= min_dwell must pass, and one of
  T1: T > x_l;  T2: the user's clicks over the `light_user_days` UTC days ending with the
  impression's day (inclusive) < `light_user_clicks`;  T3: the item has a P10 and T > P10.
  `valid_read_rule` is the first rule that holds (1, 2, 3), else 0. Unclicked: 0 and 0.
- ndt(T) = A / (1 + exp(-(T - offset) / tau)) - B, clipped at 0; 0 when unclicked.
- log_dwell = ln(1 + T) for clicks, else 0.
- dwell_bin: the number of interior bin edges (seconds) that T reaches (T >= edge), so a dwell
  exactly on an edge falls in the upper bin, values outside the range fall in the end bins and
  a click with dwell 0 is in bin 0; -1 when unclicked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np

from core.errors import InputError
from core.settings import setting

SECONDS_PER_DAY = 86_400


def utc_date(day: int) -> str:
    """The date of UTC day `day` (unix seconds // SECONDS_PER_DAY) as YYYY-MM-DD; before year 1
    (the reader bounds timestamps above only), "day N"."""
    try:
        return (dt.date(1970, 1, 1) + dt.timedelta(days=int(day))).isoformat()
    except OverflowError:
        return f"day {day}"

# Columns the labeller reads.
LABEL_INPUTS = ("user_id", "item_id", "timestamp", "click", "dwell_time")
# What a training batch carries as labels: the click and dwell time, and the labels tasks use.
LABEL_KEYS = ("click", "valid_read", "ndt", "log_dwell", "dwell_bin", "dwell_time")


# NDT ------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class NdtParams:
    """Parameters of ndt(T) = A / (1 + exp(-(T - offset) / tau)) - B (T, offset, tau: seconds)."""

    offset: float
    tau: float
    A: float
    B: float
    t_max: float
    epsilon: float
    preset: str

    def __call__(self, dwell: np.ndarray) -> np.ndarray:
        """ndt of dwell seconds (shape [n]), clipped at 0. Clicks only: callers zero the rest."""
        value = self.A / (1.0 + np.exp(-(np.asarray(dwell, float) - self.offset) / self.tau)) - self.B
        return np.maximum(value, 0.0)

    def describe(self) -> str:
        """One line for tool summaries."""
        return (f"NDT ({self.preset}): offset {self.offset:.3f}  tau {self.tau:.3f}  "
                f"A {self.A:.4f}  B {self.B:.4f}")

    def derivative(self, dwell: float) -> float:
        """d ndt / dT at `dwell` seconds (unclipped branch)."""
        z = (dwell - self.offset) / self.tau
        return self.A * _sigmoid(z) * _sigmoid(-z) / self.tau


PAPER_NDT = dict(offset=15.0, tau=20.0, A=2.319, B=0.744)
# The automatic fit's defaults (`fit_ndt`): the range A - B and the slope at x_h.
AUTO_T_MAX, AUTO_EPSILON = 1.575, 1e-5


def _sigmoid(x: float) -> float:
    """1 / (1 + exp(-x)) without overflow."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _auto_a_b(offset: float, tau: float, t_max: float) -> tuple[float, float]:
    # A - B = t_max and B = A / (1 + exp(offset / tau))  =>  A = t_max / sigmoid(offset / tau).
    a = t_max / _sigmoid(offset / tau)
    return a, a * _sigmoid(-offset / tau)


def fit_ndt(preset: str, *, x_l: float, x_h: float, t_max: float | None = None,
            epsilon: float | None = None, offset: float | None = None, tau: float | None = None,
            A: float | None = None, B: float | None = None) -> NdtParams:
    """NDT parameters for a preset ('auto', 'paper' or 'explicit'); `t_max` and `epsilon`
    default to AUTO_T_MAX and AUTO_EPSILON.

    auto: offset = x_l (or `offset`); B = A / (1 + exp(offset / tau)) so ndt(0) = 0; A - B = t_max;
    tau solves d ndt/dT (x_h) = epsilon on the saturated branch 0 < tau < (x_h - offset) / 2,
    where the derivative rises with tau, by bisection. Explicit `tau`, `A`, `B` override; with
    `A` alone, B = A / (1 + exp(offset / tau)) keeps ndt(0) = 0; with `B` alone, A = t_max + B
    keeps the range (each flag's documented default). The fit of tau is the curve's with both
    automatic. paper: offset 15, tau 20, A 2.319, B 0.744. explicit: all four given.
    """
    t_max = AUTO_T_MAX if t_max is None else t_max
    epsilon = AUTO_EPSILON if epsilon is None else epsilon
    if preset == "paper":
        p = dict(PAPER_NDT)
        return NdtParams(p["offset"], p["tau"], p["A"], p["B"], p["A"] - p["B"], epsilon, "paper")
    if preset == "explicit":
        if None in (offset, tau, A, B):
            raise InputError("--ndt=explicit needs --ndt_offset, --ndt_tau, --ndt_a and --ndt_b")
        return _rising(NdtParams(offset, tau, A, B, A - B, epsilon, "explicit"))
    if preset != "auto":
        raise InputError(f"unknown NDT preset '{preset}' (expected auto, paper or explicit)")
    offset = x_l if offset is None else offset
    if tau is None:
        tau = _solve_tau(offset, x_h, t_max, epsilon)
    a, b = _auto_a_b(offset, tau, t_max)
    if A is not None:
        a, b = A, A * _sigmoid(-offset / tau) if B is None else B
    elif B is not None:
        a, b = t_max + B, B
    return _rising(NdtParams(offset, tau, a, b, a - b, epsilon, "auto"))


def _rising(ndt: NdtParams) -> NdtParams:
    """`ndt`, or an InputError when its A or range A - B is not positive: ndt(T) <= 0 for
    every T, so every click's NDT label would be 0 (clipped) without a word."""
    if not (ndt.A > 0 and ndt.A - ndt.B > 0):
        raise InputError(f"the NDT's A ({ndt.A:g}) and its range A - B ({ndt.A - ndt.B:g}) must "
                         "be > 0, else every click's NDT is 0: check --ndt_a and --ndt_b")
    return ndt


class NdtFitError(InputError):
    """The automatic NDT fit found no tau for these logs' x_l, x_h (not a flag mistake)."""


def _solve_tau(offset: float, x_h: float, t_max: float, epsilon: float) -> float:
    def slope(tau: float) -> float:
        a, _ = _auto_a_b(offset, tau, t_max)
        z = (x_h - offset) / tau
        return a * _sigmoid(z) * _sigmoid(-z) / tau

    hi = (x_h - offset) / 2.0
    if hi <= 0:
        raise NdtFitError(f"cannot fit NDT: x_h ({x_h:.3g} s) must exceed the offset "
                         f"({offset:.3g} s)")
    lo = hi * 1e-6
    if not slope(lo) < epsilon < slope(hi):
        raise NdtFitError(f"cannot fit NDT: no tau in (0, {hi:.4g}) gives d ndt/dT(x_h) = "
                         f"{epsilon:g} (the slope ranges {slope(lo):.3g} .. {slope(hi):.3g}); "
                         "choose another --ndt_epsilon or give --ndt_tau")
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if slope(mid) < epsilon:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13 * hi:
            break
    return 0.5 * (lo + hi)


# Dwell bins -----------------------------------------------------------------------------------------
def dwell_bin_edges(clicked_dwell: np.ndarray, num_bins: int) -> np.ndarray:
    """`num_bins` + 1 edges (seconds), equal-width on ln(T) between the 0.5th and 99.5th
    percentiles (numpy's linear interpolation) of clicked dwell times > 0."""
    positive = clicked_dwell[clicked_dwell > 0]
    lo, hi = np.percentile(positive, [0.5, 99.5])
    if not hi > lo:
        raise InputError(f"cannot make dwell-time bins: the 0.5th and 99.5th percentiles of "
                         f"clicked dwell are equal ({lo:g} s)")
    return np.exp(np.linspace(np.log(lo), np.log(hi), num_bins + 1))


def assign_bins(dwell: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each dwell (seconds), [n] -> [n] int64, with the module's edge convention."""
    return np.searchsorted(np.asarray(edges)[1:-1], dwell, side="right").astype(np.int64)


# Valid-read thresholds -------------------------------------------------------------------------------
# Rule T2's longest window: ten years of UTC days (its counts are summed per day of the window).
MAX_WINDOW_DAYS = 3650


@dataclasses.dataclass(frozen=True)
class RuleConfig:
    """Thresholds of the valid-read rules (stored in the artifact; label flags may override)."""

    min_dwell: float = setting(5.0, "Valid-read floor: dwell below it (s) is never a valid "
                               "read.")
    t1_threshold: float | None = setting(None, "Rule T1's threshold in seconds (default: x_l).")
    light_user_days: int = setting(7, "Rule T2's window in UTC days.")
    light_user_clicks: int = setting(7, "Rule T2: a user with fewer clicks than this in the "
                                     "window is light.")
    min_item_records: int = setting(5, "Rule T3: items need this many clicks with dwell > 0 "
                                    "for a P10.")

    def check(self) -> "RuleConfig":
        """Itself, or an InputError naming each flag out of range (checked where flags set the
        rules, the statistics and label jobs; an artifact's stored rules load as they are).
        Out of range, a threshold labels without a word: a window of 0 or fewer days makes
        every clicker light (T2), a negative floor lets dwell 0 be a valid read."""
        problems = []
        # (inf: no click is ever a valid read, without a word)
        if not 0 <= self.min_dwell < math.inf:
            problems.append(f"--min_dwell must be a finite number >= 0 of seconds, not "
                            f"{self.min_dwell:g}")
        if self.t1_threshold is not None and not 0 <= self.t1_threshold < math.inf:
            problems.append(f"--t1_threshold must be a finite number >= 0 of seconds, not "
                            f"{self.t1_threshold:g}")
        if not 1 <= self.light_user_days <= MAX_WINDOW_DAYS:
            problems.append(f"--light_user_days must be 1 to {MAX_WINDOW_DAYS:,} UTC days, not "
                            f"{self.light_user_days}")
        if self.light_user_clicks < 0:
            problems.append(f"--light_user_clicks must be >= 0, not {self.light_user_clicks}")
        if self.min_item_records < 0:
            problems.append(f"--min_item_records must be >= 0, not {self.min_item_records}")
        if problems:
            raise InputError("; ".join(problems))
        return self
