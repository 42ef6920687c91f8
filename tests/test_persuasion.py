"""Exact Bayesian persuasion: the LP optimum against an independent concavification, validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linprog

from bpa_gym.errors import ConfigError
from bpa_gym.persuasion import (
    TabularGame,
    best_response,
    full_information_value,
    no_information_value,
    normalize_scheme,
    optimal_scheme,
    posteriors,
)


def test_prosecutor_optimum_is_0_6():
    g = TabularGame.prosecutor()
    opt = optimal_scheme(g.prior, g.receiver_utility, g.sender_utility)
    assert opt.value == pytest.approx(0.6, abs=1e-9)
    assert opt.lp_value == pytest.approx(0.6, abs=1e-9)
    # guilty always gets "convict"; 3/7 of the innocent too
    np.testing.assert_allclose(opt.scheme, [[4 / 7, 3 / 7], [0.0, 1.0]], atol=1e-9)
    assert opt.actions.tolist() == [0, 1]
    np.testing.assert_allclose(opt.state_values, [3 / 7, 1.0], atol=1e-9)
    assert float(g.prior @ opt.state_values) == pytest.approx(opt.value, abs=1e-12)
    assert no_information_value(g) == 0.0
    assert full_information_value(g) == pytest.approx(0.3)


def test_bayes_rule_and_sender_favoured_ties():
    post, p = posteriors([0.7, 0.3], [[4 / 7, 3 / 7], [0.0, 1.0]])
    np.testing.assert_allclose(p, [0.4, 0.6])
    np.testing.assert_allclose(post, [[1.0, 0.0], [0.5, 0.5]])
    g = TabularGame.prosecutor()
    # exactly indifferent (0.5): the judge convicts, the Sender's favourite
    assert int(best_response([0.5, 0.5], g.receiver_utility, g.sender_utility)) == 1
    # within the 1e-6 tolerance: still convicts; beyond it: acquits
    assert int(best_response([0.5 + 1e-8, 0.5 - 1e-8], g.receiver_utility, g.sender_utility)) == 1
    assert int(best_response([0.5 + 1e-4, 0.5 - 1e-4], g.receiver_utility, g.sender_utility)) == 0
    # a signal of probability 0 gets the prior
    post, p = posteriors([0.7, 0.3], [[1.0, 0.0], [1.0, 0.0]])
    assert p[1] == 0.0
    np.testing.assert_allclose(post[1], [0.7, 0.3])


def _concavified_value(g: TabularGame) -> float:
    """Independent optimum: concave envelope of the Sender's value over posteriors (an LP over posteriors).

    v(q) = u_s at the Receiver's Sender-favoured best response to q is piecewise linear on the regions
    where one action is optimal; its concave envelope at the prior is attained by splitting the prior
    into vertices of those regions.  Enumerate the vertices (intersections of S-1 hyperplanes among
    {U_r(a) = U_r(b)} and {q_ω = 0} with the simplex), then maximise Σ λ_k v(q_k) s.t. Σ λ_k q_k = prior.
    """
    S, A = g.n_states, g.n_actions
    planes = [g.receiver_utility[:, a] - g.receiver_utility[:, b] for a, b in itertools.combinations(range(A), 2)]
    planes += list(np.eye(S))
    points = []
    for combo in itertools.combinations(planes, S - 1):
        M = np.vstack(list(combo) + [np.ones(S)])
        if abs(np.linalg.det(M)) < 1e-12:
            continue
        q = np.linalg.solve(M, np.r_[np.zeros(S - 1), 1.0])
        if q.min() >= -1e-12:
            points.append(np.clip(q, 0, None) / np.clip(q, 0, None).sum())
    points.append(g.prior.copy())
    Q = np.array(points)
    vals = []
    for q in Q:  # v(q), Sender-favoured among near-best responses, written out without the library
        u_r = q @ g.receiver_utility
        best = np.flatnonzero(u_r >= u_r.max() - 1e-9)
        vals.append(max(q @ g.sender_utility[:, a] for a in best))
    res = linprog(-np.array(vals), A_eq=Q.T, b_eq=g.prior, bounds=(0, None), method="highs")
    assert res.status == 0
    return float(-res.fun)


@pytest.mark.parametrize("seed", range(12))
def test_lp_matches_concavification_on_random_games(seed):
    n_states = 2 if seed < 6 else 3
    n_actions = 2 + seed % 3
    g = TabularGame.random(seed, n_states, n_actions)
    opt = g.optimum
    assert opt.value == pytest.approx(_concavified_value(g), abs=1e-6)
    assert opt.value == pytest.approx(opt.lp_value, abs=1e-8)
    assert g.sender_value(opt.scheme) == opt.value
    # the optimum dominates no- and full information
    assert opt.value >= no_information_value(g) - 1e-9
    assert opt.value >= full_information_value(g) - 1e-9


def test_concavification_on_prosecutor():
    assert _concavified_value(TabularGame.prosecutor()) == pytest.approx(0.6, abs=1e-9)


@pytest.mark.parametrize(
    "prior, ur, us, match",
    [
        ([0.5, 0.6], np.eye(2), np.eye(2), "sums to 1.1"),
        ([1.2, -0.2], np.eye(2), np.eye(2), "negative"),
        ([0.5, 0.5], np.eye(3), np.eye(3), "3 rows but the prior has 2 states"),
        ([0.5, 0.5], np.eye(2), np.ones((2, 3)), "sender_utility has shape"),
        ([0.5, 0.5], [[1.0, np.nan], [0.0, 1.0]], np.eye(2), "non-finite"),
        ([1.0], [[1.0, 0.0]], [[1.0, 0.0]], "at least 2 states"),
        ([0.5, 0.5], [[1.0], [0.0]], [[1.0], [0.0]], "at least 2 actions"),
        ([[0.5, 0.5]], np.eye(2), np.eye(2), "prior must have shape"),
    ],
)
def test_invalid_games_raise_config_error(prior, ur, us, match):
    with pytest.raises(ConfigError, match=match):
        optimal_scheme(prior, ur, us)
    with pytest.raises(ConfigError, match=match):
        TabularGame(prior, ur, us)


def test_prior_tolerance_is_1e_9():
    TabularGame([0.5 + 4e-10, 0.5], np.eye(2), np.eye(2))  # accepted
    with pytest.raises(ConfigError, match="normalise"):
        TabularGame([0.5 + 1e-8, 0.5], np.eye(2), np.eye(2))


@pytest.mark.parametrize(
    "scheme, match",
    [
        ([[1.0, -0.1], [0.0, 1.0]], "negative"),
        ([[0.0, 0.0], [0.0, 1.0]], "sum to 0"),
        ([[np.inf, 0.0], [0.0, 1.0]], "non-finite"),
        ([[np.nan, 1.0], [0.0, 1.0]], "non-finite"),
        ([[1.0, 0.0, 0.0]], "shape"),
    ],
)
def test_invalid_schemes_raise(scheme, match):
    with pytest.raises(ConfigError, match=match):
        normalize_scheme(scheme, 2)
    with pytest.raises(ConfigError, match=match):
        TabularGame.prosecutor().sender_value(scheme)


def test_game_is_frozen_and_random_is_reproducible():
    g = TabularGame.random(7, 4, 3)
    with pytest.raises(ValueError):
        g.prior[0] = 1.0
    h = TabularGame.random(7, 4, 3)
    np.testing.assert_array_equal(g.receiver_utility, h.receiver_utility)
    assert not np.array_equal(g.prior, TabularGame.random(8, 4, 3).prior)
    with pytest.raises(ConfigError, match="n_states = 1: must be an integer >= 2"):
        TabularGame.random(0, 1, 3)


def test_sample_many_matches_expectations():
    g = TabularGame.random(3, 3, 3)
    rng = np.random.default_rng(0)
    schemes = rng.random((20_000, 3, 3))
    batch = g.sample_many(schemes, rng)
    assert len(batch) == 20_000
    for i in range(0, 20_000, 2_000):
        assert batch.expected_rewards[i] == pytest.approx(g.sender_value(schemes[i]), abs=1e-12)
        ev = g.evaluate(schemes[i])
        assert batch.actions[i] == ev.actions[batch.signals[i]]
    # the realised rewards average to the expected ones
    se = batch.rewards.std() / np.sqrt(len(batch))
    assert abs(batch.rewards.mean() - batch.expected_rewards.mean()) < 5 * se
    with pytest.raises(ConfigError, match="negative"):
        g.sample_many(-schemes[:2], rng)
