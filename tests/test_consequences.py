"""online.crn (keyed random numbers) and online.consequences (leaving, returning) against closed
forms and NumPy references."""

import math

import numpy as np
import pytest
from scipy import stats

from online import consequences as conseq
from online import crn


def test_keyed_uniforms_are_a_function_of_their_key():
    a = crn.uniform(3, 1, np.arange(1000))
    assert np.array_equal(a, crn.uniform(3, 1, np.arange(1000)))
    # One key's draw does not depend on the others drawn with it.
    assert crn.uniform(3, 1, np.array([500]))[0] == a[500]
    assert not np.array_equal(a, crn.uniform(4, 1, np.arange(1000)))
    # Uniform on [0, 1) and without serial correlation (Kolmogorov-Smirnov, lag-1).
    many = crn.uniform(0, 9, np.arange(200_000))
    assert 0 <= many.min() and many.max() < 1
    assert stats.kstest(many, "uniform").pvalue > 1e-3
    assert abs(np.corrcoef(many[:-1], many[1:])[0, 1]) < 0.01
    normal = crn.normal(0, 9, np.arange(200_000))
    assert stats.kstest(normal, "norm").pvalue > 1e-3


def test_poisson_by_inversion_has_the_poisson_distribution_and_is_monotone():
    u = crn.uniform(1, 2, np.arange(100_000))
    for rate in (0.3, 4.4, 40.0):
        draws = crn.poisson(u, np.full(len(u), rate))
        assert draws.mean() == pytest.approx(rate, rel=0.02)
        assert draws.var() == pytest.approx(rate, rel=0.05)
        expected = stats.poisson.ppf(u[:2000], rate)
        np.testing.assert_array_equal(draws[:2000], expected)
    low, high = crn.poisson(u, np.full(len(u), 1.0)), crn.poisson(u, np.full(len(u), 1.3))
    assert np.all(high >= low)


def test_outcome_scores_follow_the_dwell_thresholds():
    click = np.array([0, 1, 1, 1, 1, 0])
    dwell = np.array([0.0, 3.0, 15.0, 100.0, 250.0, 50.0])
    got = conseq.outcome_scores(click, dwell, x_l=15.0, x_h=200.0)
    np.testing.assert_array_equal(got, [0.0, -1.0, 0.5, 0.5, 1.0, 0.0])


def test_without_consequences_sessions_have_the_logs_length_distribution():
    """h0 reproduces 1 + Poisson(mean): P(length = n) against scipy's pmf."""
    mean, slots, n = 4.4, 50, 200_000
    hazard0 = conseq.baseline_hazard(mean, slots)
    uniforms = crn.uniform(5, 6, np.arange(n)[:, None], np.arange(slots)[None, :])
    length = conseq.session_lengths(np.zeros((n, slots)), uniforms, hazard0,
                                    conseq.STRENGTHS["none"])
    observed = np.bincount(length - 1, minlength=15)[:15] / n
    np.testing.assert_allclose(observed, stats.poisson.pmf(np.arange(15), mean), atol=0.004)
    assert hazard0[0] == pytest.approx(math.exp(-mean))  # P(P = 0)
    # Every slot's hazard against scipy's pmf / sf, the far tail included (1 - cumsum(pmf)
    # lost it from slot 29 on: 0.40 at slot 31, then 1e-12, where it rises towards 1).
    k = np.arange(slots - 1)
    np.testing.assert_allclose(hazard0[:-1], stats.poisson.pmf(k, mean)
                               / stats.poisson.sf(k - 1, mean), rtol=1e-9)
    assert hazard0[-1] == 1.0


def test_leaving_depends_on_the_outcome_by_the_odds_factor():
    """After one slot of outcome score q, the leave odds are h0's times exp(-beta q + c)."""
    hazard0 = conseq.baseline_hazard(4.4, 10)
    strength = conseq.STRENGTHS["chosen"]
    n = 400_000
    uniforms = crn.uniform(8, 8, np.arange(n)[:, None], np.arange(10)[None, :])
    for q in (-1.0, 0.5, 1.0):
        length = conseq.session_lengths(np.full((n, 10), q), uniforms, hazard0, strength, 0.2)
        h = (length == 1).mean()
        h0 = hazard0[0]
        odds = h0 / (1 - h0) * math.exp(-strength.beta * q + 0.2)
        assert h == pytest.approx(odds / (1 + odds), abs=0.003)
    assert strength.beta == pytest.approx(math.log(2))  # a long read halves the odds


def test_the_leave_offset_restores_the_mean_length():
    hazard0 = conseq.baseline_hazard(4.4, 50)
    rng = np.random.default_rng(3)
    scores = rng.choice([0.0, -1.0, 0.5, 1.0], p=[0.88, 0.02, 0.08, 0.02], size=(20_000, 50))
    uniforms = rng.random((20_000, 50))
    strength = conseq.STRENGTHS["strong"]
    c = conseq.calibrate_leave_offset(scores, uniforms, hazard0, strength)
    none = conseq.session_lengths(scores, uniforms, hazard0, conseq.STRENGTHS["none"]).mean()
    calibrated = conseq.session_lengths(scores, uniforms, hazard0, strength, c).mean()
    assert calibrated == pytest.approx(none, rel=0.002)
    # Mostly neutral slots with some good reads: a positive offset is needed to shorten them.
    assert c > 0


def test_return_multiplier_by_hand():
    user = np.array([0, 0, 1, 1, 1])
    scores = np.array([1.0, 0.5, -1.0, 0.0, 0.0])
    got = conseq.return_multipliers(user, scores, 4, conseq.STRENGTHS["chosen"], 0.1)
    want = [math.exp(0.25 * (0.75 - 0.1)), math.exp(0.25 * (-1 / 3 - 0.1)), 1.0, 1.0]
    np.testing.assert_allclose(got, want)
    clipped = conseq.return_multipliers(user, scores * 20, 4, conseq.STRENGTHS["strong"], 0.0)
    assert clipped[0] == 2.0 and clipped[1] == 0.5
