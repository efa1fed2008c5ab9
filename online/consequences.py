"""Consequences: what a user does next depends on what the policy showed (SPEC §10).

Without consequences every policy gets the same sessions and slots, so a user fed clickbait reads
as long and comes back as often as one fed what they love. Here, as in RecSim's interest
evolution environment (a time budget that satisfying content refunds) and KuaiSim (a leave model
per step and a return model per day), two decisions depend on outcomes:

1. **Leaving a session.** After slot k the user leaves with probability

       h = sigmoid(logit(h0(k)) - beta * q_k + c)

   where q_k is the slot's outcome score (below), h0(k) the hazard of the simulator's session
   length without consequences (the logged world's 1 + Poisson(`session_items_mean`) slots:
   h0(k) = P(P = k | P >= k), P ~ Poisson), and c a constant calibrated so that the logging
   policy's sessions keep their mean length. The decision compares h with a uniform keyed by
   (user, day, session, slot) (`online.crn`).
2. **Coming back.** A user's sessions on day d + 1 are Poisson(rate * m), the rate of the world
   (sessions per day, weekends 15 % more) times

       m = clip(exp(gamma * (R - R_ref)), 0.5, 2)

   where R is the user's mean outcome score over day d's slots and R_ref the logging policy's
   mean (calibrated, so the logging policy's impressions per user stay as they were). A user
   with no session on day d keeps m = 1. The count is drawn by inverting a uniform keyed by
   (user, day), so a higher rate never gives fewer sessions.

Outcome score q of a slot (`outcome_scores`), from the stats artifact's x_l = exp(mu - sigma) and
x_h = exp(mu + sigma): no click 0; a click read shorter than x_l (a bounce or a short read: the
click the user regrets; rule T1's threshold) -1; a read between x_l and x_h +0.5; a long read
beyond x_h +1. The scale is KuaiSim's weighted feedback (a response weighed by how much it shows
satisfaction), with the regretted click made negative as RecSim's low-quality content costs
budget instead of refunding it.

Strengths (`STRENGTHS`), fixed before any model policy was compared (the commit history shows
them first); every comparison is reported at all three:

- `none`: beta = gamma = 0: today's sessions (same length distribution, drawn from the same keyed
  uniforms for every policy) and no effect on returning;
- `chosen`: beta = ln 2: a long read halves the odds of leaving after its slot and a regretted
  click doubles them (KuaiSim's leave model: a clicked slot halves that step's fall of the
  user's patience, i.e. roughly doubles the steps left; RecSim: the best content refunds 0.9 of
  what it cost); gamma = 0.25: one unit of the day's mean outcome score moves the next day's
  session rate by about 25 % (KuaiSim's return model: P(return next day) = 0.4 + 0.1 x mean
  weighted feedback, i.e. 25 % relative per unit);
- `strong`: both doubled (beta = 2 ln 2, gamma = 0.5), within the range GFN4Retention uses
  (a feedback influence of 0.4 on the same 0.4 base: up to 2x).

These are documented assumptions anchored on those simulators' constants, not measurements of a
real feed: no published per-slot figure of leaving after a click against no click was found
(docs/online.md lists what was read). c and R_ref are not choices: they are calibrated on each
world with the logging policy (`calibrate`), as the simulator's b0 and m0 are on its marginals.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

# Outcome scores of a slot.
SCORE_NO_CLICK, SCORE_REGRET, SCORE_READ, SCORE_LONG = 0.0, -1.0, 0.5, 1.0
RETURN_CLIP = (0.5, 2.0)


@dataclasses.dataclass(frozen=True)
class Strength:
    """beta: leave log-odds per unit of outcome score; gamma: log return rate per unit of the
    day's mean outcome score."""

    beta: float
    gamma: float


STRENGTHS = {
    "none": Strength(0.0, 0.0),
    "chosen": Strength(math.log(2.0), 0.25),
    "strong": Strength(2.0 * math.log(2.0), 0.5),
}
DEFAULT_STRENGTH = "chosen"


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Constants calibrated on a world with the logging policy (`calibrate`)."""

    leave_offset: float = 0.0  # c
    reference_score: float = 0.0  # R_ref


def outcome_scores(click: np.ndarray, dwell: np.ndarray, x_l: float, x_h: float) -> np.ndarray:
    """q per slot [n] (module docstring): 0 unclicked, -1 a click read < x_l seconds, +0.5 a
    read in [x_l, x_h], +1 beyond x_h."""
    clicked = np.asarray(click) == 1
    dwell = np.asarray(dwell, float)
    score = np.where(dwell > x_h, SCORE_LONG, np.where(dwell >= x_l, SCORE_READ, SCORE_REGRET))
    return np.where(clicked, score, SCORE_NO_CLICK)


def baseline_hazard(mean_extra_slots: float, slots: int) -> np.ndarray:
    """h0(k) for k = 0 .. slots - 1: the chance that a session of 1 + Poisson(mean_extra_slots)
    slots ends after slot k, given that it reached it; the last slot ends every session."""
    # P(P >= k) as the sum of the tail, smallest terms first: 1 - cumsum(pmf) cancels to
    # rounding noise from k near 30 (at a mean of 4.4), where h0 then fell towards 0 instead of
    # rising to 1. The tail is summed far past the slots' end (its terms then vanish).
    k = np.arange(slots + int(10 * mean_extra_slots) + 200)
    log_pmf = -mean_extra_slots + k * math.log(mean_extra_slots) - np.array(
        [math.lgamma(i + 1) for i in k])
    pmf = np.exp(log_pmf)
    reached = np.cumsum(pmf[::-1])[::-1][:slots]  # P(P >= k)
    pmf = pmf[:slots]
    hazard = np.where(reached > 1e-300, pmf / np.maximum(reached, 1e-300), 1.0)
    hazard = np.clip(hazard, 1e-12, 1.0)
    hazard[-1] = 1.0
    return hazard


def session_lengths(scores: np.ndarray, leave_uniforms: np.ndarray, hazard0: np.ndarray,
                    strength: Strength, leave_offset: float = 0.0) -> np.ndarray:
    """Slots shown in each session [sessions], from the outcome score of every slot it could
    reach [sessions, slots] and its leave uniforms [sessions, slots]: the user leaves after
    the first slot k whose uniform falls below h(k) (module docstring)."""
    logit0 = np.log(hazard0) - np.log1p(-np.minimum(hazard0, 1 - 1e-12))
    logit = logit0[None, :] - strength.beta * scores + leave_offset
    hazard = 1.0 / (1.0 + np.exp(-logit))
    hazard[:, -1] = 1.0
    leaves = leave_uniforms < hazard
    return np.argmax(leaves, axis=1) + 1


def return_multipliers(user: np.ndarray, scores: np.ndarray, num_users: int,
                       strength: Strength, reference_score: float) -> np.ndarray:
    """m per user [num_users] for the next day from the day's shown slots (user [n], outcome
    score [n]); users without a slot keep 1."""
    slots = np.bincount(user, minlength=num_users)
    total = np.bincount(user, weights=scores, minlength=num_users)
    mean = np.divide(total, slots, out=np.full(num_users, reference_score), where=slots > 0)
    return np.clip(np.exp(strength.gamma * (mean - reference_score)), *RETURN_CLIP)


def calibrate_leave_offset(scores: np.ndarray, leave_uniforms: np.ndarray,
                           hazard0: np.ndarray, strength: Strength) -> float:
    """c such that sessions with these slot scores (the logging policy's) last as long on
    average as without consequences (bisection on the mean length, which falls as c rises)."""
    if strength.beta == 0:
        return 0.0
    target = session_lengths(scores, leave_uniforms, hazard0, Strength(0.0, 0.0)).mean()
    lo, hi = -5.0, 5.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if session_lengths(scores, leave_uniforms, hazard0, strength, mid).mean() > target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
