"""Exact Bayesian persuasion on finite games (numpy/scipy only, no Gymnasium).

A *tabular* persuasion game (Kamenica & Gentzkow 2011) has a finite set of
states ``Ω`` with a common prior ``μ``, a Receiver with actions ``A`` and two
utility tables of shape ``(n_states, n_actions)``: ``receiver_utility[ω, a]``
and ``sender_utility[ω, a]``.  The Sender commits to a *scheme*: an array of
shape ``(n_states, n_signals)`` whose row ``ω`` is the signal distribution
``π(·|ω)``.  On a signal ``σ`` the Receiver forms the posterior by Bayes' rule,
``μ(ω|σ) ∝ μ(ω) π(σ|ω)``, and plays a best response to it.

Conventions used everywhere in bpa_gym:

* **Ties go to the Sender.**  Among the Receiver's best responses the one
  best for the Sender is played (lowest index among equals).  An LP optimum
  leaves the Receiver exactly indifferent, so "best" is up to a tolerance of
  :data:`BEST_RESPONSE_RTOL` times the scale :func:`receiver_scale` (the
  largest per-state spread ``max_a u_r − min_a u_r``, so the tolerance is
  invariant to rescaling or shifting ``u_r``, as best responses are): an
  optimal scheme that went through float32 (an agent's action) keeps its value.
* **Signals of probability 0** get the prior as their posterior (any choice is
  fine: they never occur and contribute nothing to the value).
* **Schemes are normalised row by row.**  A row with a negative or non-finite
  entry, or that sums to 0, is an error, never silently fixed.
* **Revelation principle.**  :func:`optimal_scheme` returns a scheme with
  ``n_signals = n_actions``: signal ``a`` recommends action ``a`` and the LP's
  obedience constraints make following it a best response.

Example (the prosecutor of Kamenica & Gentzkow):
    >>> game = TabularGame.prosecutor()
    >>> opt = optimal_scheme(game.prior, game.receiver_utility, game.sender_utility)
    >>> round(opt.value, 6), round(float(opt.scheme[0, 1]), 6)  # convicts 3/7 of innocents
    (0.6, 0.428571)
    >>> no_information_value(game), full_information_value(game)
    (0.0, 0.3)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Sequence

import warnings

import numpy as np
from pydantic import Field

from bpa_gym.common.sampling import sample_categorical
from bpa_gym.common.validation import Arguments, FiniteFloat, Int, PositiveInt, Seed, check, check_value
from bpa_gym.errors import ConfigError

#: Relative tolerance of the Receiver's best response: an action within
#: ``BEST_RESPONSE_RTOL * receiver_scale(receiver_utility)`` of the best expected utility
#: counts as a best response (and ties go to the Sender).  1e-7 would be enough
#: for float64 LP round-off; float32 round-off of a scheme (agents emit float32)
#: moves posteriors by a few 1e-8, so 1e-6 leaves a safety factor.  What a
#: Sender can gain from the tolerance is bounded exactly by
#: :func:`tolerance_supremum` (the LP with obedience relaxed by the tolerance);
#: it is of order 1e-6 of the utilities' range in typical games, but can be
#: larger where the Receiver is nearly indifferent everywhere.
BEST_RESPONSE_RTOL: float = 1e-6

#: How close to a decision boundary the plain-Python fast paths defer to numpy (see
#: :meth:`TabularGame._best_response_fast`): far above the few ulps by which their sums may differ.
_EDGE: float = 1e-12

#: How far a prior may sum away from 1.
PRIOR_ATOL: float = 1e-9


# --------------------------------------------------------------------------- validation


def as_float_array(value, name: str) -> np.ndarray:
    """``value`` as a new float64 array, or a :class:`ConfigError` naming ``name``.

    Ragged nesting, strings, objects and complex numbers are refused (numpy
    would raise a bare error or silently drop the imaginary part).

    Example:
        >>> as_float_array([[1, 2], [3]], "scheme")
        Traceback (most recent call last):
        ...
        bpa_gym.errors.ConfigError: scheme must be a rectangular array of real numbers, got [[1, 2], [3]] (ragged or non-numeric)
    """
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":  # the common case, fast
        return np.array(value, dtype=np.float64)

    def bad(why: str) -> ConfigError:
        shown = repr(value)
        shown = shown if len(shown) <= 200 else shown[:197] + "..."
        return ConfigError(f"{name} must be a rectangular array of real numbers, got {shown} ({why})")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy's ComplexWarning / ragged-array deprecations become errors
            raw = np.asarray(value)
    except Exception:
        raise bad("ragged or non-numeric") from None
    if raw.dtype.kind == "c":
        raise bad("complex numbers")
    if raw.dtype.kind not in "biuf":
        raise bad("ragged or non-numeric")
    return np.array(raw, dtype=np.float64)


def _as_array(name: str, value, ndim: int) -> np.ndarray:
    arr = as_float_array(value, name)
    if arr.ndim != ndim:
        shape = "(n_states,)" if ndim == 1 else "(n_states, n_actions)"
        raise ConfigError(f"{name} must have shape {shape}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} has non-finite entries (nan/inf): {arr.tolist()}; pass finite numbers")
    return arr


def validate_game(prior, receiver_utility, sender_utility) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check a game's arrays and return them as float64 copies.

    Args:
        prior: Shape ``(n_states,)``, nonnegative, summing to 1 within 1e-9.
        receiver_utility: Shape ``(n_states, n_actions)``, finite.
        sender_utility: Same shape as ``receiver_utility``, finite.

    Returns:
        ``(prior, receiver_utility, sender_utility)`` as float64 arrays.

    Raises:
        ConfigError: naming the bad argument and how to fix it.

    Example:
        >>> validate_game([0.5, 0.6], [[1, 0], [0, 1]], [[0, 1], [0, 1]])
        Traceback (most recent call last):
        ...
        bpa_gym.errors.ConfigError: prior sums to 1.1, not 1; normalise it (prior / prior.sum())
    """
    mu = _as_array("prior", prior, 1)
    ur = _as_array("receiver_utility", receiver_utility, 2)
    us = _as_array("sender_utility", sender_utility, 2)
    if mu.size < 2:
        raise ConfigError(f"a persuasion game needs at least 2 states, got prior of length {mu.size}")
    if np.any(mu < 0):
        raise ConfigError(f"prior has negative entries {mu.tolist()}; a prior is a probability vector (all >= 0)")
    if abs(mu.sum() - 1.0) > PRIOR_ATOL:
        raise ConfigError(f"prior sums to {mu.sum():.12g}, not 1; normalise it (prior / prior.sum())")
    if ur.shape[0] != mu.size:
        raise ConfigError(
            f"receiver_utility has {ur.shape[0]} rows but the prior has {mu.size} states; "
            "rows are states, columns are actions"
        )
    if ur.shape[1] < 2:
        raise ConfigError(f"the Receiver needs at least 2 actions, receiver_utility has {ur.shape[1]} column(s)")
    if us.shape != ur.shape:
        raise ConfigError(
            f"sender_utility has shape {us.shape} but receiver_utility has shape {ur.shape}; "
            "both are (n_states, n_actions)"
        )
    return mu, ur, us


def normalize_scheme(scheme, n_states: int, n_signals: int | None = None) -> np.ndarray:
    """Validate a scheme and return it row-normalised, as float64.

    Args:
        scheme: Array of shape ``(n_states, n_signals)``; row ``ω`` holds
            nonnegative weights of ``π(·|ω)`` (any positive scale).
        n_states: Expected number of rows.
        n_signals: Expected number of columns (``None``: any, at least 1).

    Returns:
        The scheme with every row summing to 1.

    Raises:
        ConfigError: wrong shape, or a row with a negative or non-finite entry
            or zero sum.  Invalid rows are never silently repaired.

    Example:
        >>> normalize_scheme([[1, 1], [0, 2]], 2).tolist()
        [[0.5, 0.5], [0.0, 1.0]]
    """
    s = as_float_array(scheme, "a scheme")
    if s.ndim != 2 or s.shape[0] != n_states or (n_signals is not None and s.shape[1] != n_signals) or s.size == 0:
        want = f"({n_states}, {n_signals if n_signals is not None else 'n_signals'})"
        raise ConfigError(f"a scheme must have shape {want} (row ω = π(·|ω)), got shape {s.shape}")
    sums = s.sum(axis=1)
    if not (np.isfinite(sums).all() and s.min() >= 0 and sums.min() > 0):  # one cheap check, then diagnose
        bad = ~np.isfinite(s).all(axis=1)
        if bad.any():
            raise ConfigError(
                f"scheme rows {np.flatnonzero(bad).tolist()} have non-finite entries; pass finite weights"
            )
        bad = (s < 0).any(axis=1)
        if bad.any():
            raise ConfigError(
                f"scheme rows {np.flatnonzero(bad).tolist()} have negative entries; a row is a distribution "
                "over signals (use e.g. a softmax or clip at 0 yourself)"
            )
        raise ConfigError(
            f"scheme rows {np.flatnonzero(sums <= 0).tolist()} sum to 0; every state needs some signal probability"
        )
    return s / sums[:, None]


# --------------------------------------------------------------------------- Bayes + best response


def posteriors(prior, scheme) -> tuple[np.ndarray, np.ndarray]:
    """Posterior after every signal, by Bayes' rule.

    Args:
        prior: Shape ``(n_states,)``.
        scheme: Row-normalised scheme, shape ``(n_states, n_signals)``.

    Returns:
        ``(post, p_signal)``: ``post[σ, ω] = μ(ω|σ)`` of shape
        ``(n_signals, n_states)`` (the prior for a signal of probability 0),
        and ``p_signal[σ] = P(σ)``.

    Example:
        >>> post, p = posteriors([0.7, 0.3], [[4/7, 3/7], [0.0, 1.0]])
        >>> post.round(6).tolist(), p.round(6).tolist()
        ([[1.0, 0.0], [0.5, 0.5]], [0.4, 0.6])
    """
    mu = np.asarray(prior, dtype=np.float64)
    joint = mu[:, None] * np.asarray(scheme, dtype=np.float64)  # (S, M)
    p_signal = joint.sum(axis=0)
    if p_signal.min() > 0:
        return (joint / p_signal).T, p_signal
    post = np.empty((joint.shape[1], joint.shape[0]))
    pos = p_signal > 0
    post[pos] = (joint[:, pos] / p_signal[pos]).T
    post[~pos] = mu
    return post, p_signal


def best_response(posterior, receiver_utility, sender_utility, rtol: float = BEST_RESPONSE_RTOL) -> np.ndarray:
    """The Receiver's best response to one or many posteriors, ties to the Sender.

    Args:
        posterior: Shape ``(..., n_states)``.
        receiver_utility: Shape ``(n_states, n_actions)``.
        sender_utility: Shape ``(n_states, n_actions)``.
        rtol: Actions within ``rtol * receiver_scale(receiver_utility)`` of
            the best expected Receiver utility (in units of :func:`receiver_scale`)
            are best responses; among them the
            Sender's favourite is played (lowest index among equals).

    Returns:
        Integer array of shape ``posterior.shape[:-1]`` (a 0-d array for one
        posterior; use ``int(...)``).

    Example (the judge at P(guilty) = 0.5 is indifferent and convicts):
        >>> g = TabularGame.prosecutor()
        >>> best_response([[0.5, 0.5], [0.51, 0.49]], g.receiver_utility, g.sender_utility).tolist()
        [1, 0]
    """
    ur = np.asarray(receiver_utility, dtype=np.float64)
    return _best_response(np.asarray(posterior, dtype=np.float64), _normalised(ur),
                          np.asarray(sender_utility, dtype=np.float64), rtol)


def _best_response(q: np.ndarray, ur: np.ndarray, us: np.ndarray, tol: float) -> np.ndarray:
    u_recv = q @ ur
    ok = u_recv >= u_recv.max(axis=-1, keepdims=True) - tol
    return np.where(ok, q @ us, -np.inf).argmax(axis=-1)


# --------------------------------------------------------------------------- the game record


@dataclass(frozen=True)
class SchemeEvaluation:
    """A scheme played against the Bayesian Receiver (see :meth:`TabularGame.evaluate`).

    Attributes:
        scheme: The row-normalised scheme, ``(n_states, n_signals)``.
        posteriors: ``μ(·|σ)`` per signal, ``(n_signals, n_states)``.
        signal_probs: ``P(σ)``, ``(n_signals,)``.
        actions: The Receiver's best response to each signal, ``(n_signals,)``.
        state_values: ``Σ_σ π(σ|ω) u_s(ω, a(σ))`` per state, ``(n_states,)``.
        value: The Sender's expected utility ``Σ_ω μ(ω) state_values[ω]``.
    """

    scheme: np.ndarray
    posteriors: np.ndarray
    signal_probs: np.ndarray
    actions: np.ndarray
    state_values: np.ndarray
    value: float


_Margin = Annotated[FiniteFloat, Field(ge=0, lt=1, description="a number in [0, 1)")]


class _RandomGameArgs(Arguments):
    seed: Seed = None
    n_states: Annotated[Int, Field(ge=2)] = Field(3, description="an integer >= 2")
    n_actions: Annotated[Int, Field(ge=2)] = Field(3, description="an integer >= 2")


@dataclass(frozen=True, eq=False)
class TabularGame:
    """A finite Bayesian persuasion game (named so as not to clash with the LLM
    :class:`bpa_gym.game.PersuasionGame`).

    Arrays are validated, copied to float64 and made read-only.

    Attributes:
        prior: ``μ``, shape ``(n_states,)``.
        receiver_utility: ``u_r[ω, a]``, shape ``(n_states, n_actions)``.
        sender_utility: ``u_s[ω, a]``, shape ``(n_states, n_actions)``.
        state_names: Optional labels of the states.
        action_names: Optional labels of the actions.

    Example:
        >>> g = TabularGame([0.5, 0.5], [[1, 0], [0, 1]], [[1, 0], [1, 0]])
        >>> g.n_states, g.n_actions, g.sender_value([[1, 0], [0, 1]])
        (2, 2, 0.5)
    """

    prior: np.ndarray
    receiver_utility: np.ndarray
    sender_utility: np.ndarray
    state_names: tuple[str, ...] | None = field(default=None)
    action_names: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        mu, ur, us = validate_game(self.prior, self.receiver_utility, self.sender_utility)
        for name, arr in (("prior", mu), ("receiver_utility", ur), ("sender_utility", us)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        for name, n in (("state_names", mu.size), ("action_names", ur.shape[1])):
            names = getattr(self, name)
            if names is not None:
                names = tuple(str(x) for x in names)
                if len(names) != n:
                    raise ConfigError(f"{name} has {len(names)} entries but the game has {n}; give one name each")
                object.__setattr__(self, name, names)

    # ---- constructors

    @classmethod
    def prosecutor(cls) -> "TabularGame":
        """Kamenica & Gentzkow's prosecutor: the optimal value is 0.6.

        States (innocent, guilty) with prior (0.7, 0.3); actions (acquit,
        convict).  The judge gets 1 for a correct verdict, so convicts iff
        P(guilty) >= 0.5; the prosecutor gets 1 for a conviction.

        Example:
            >>> TabularGame.prosecutor().action_names
            ('acquit', 'convict')
        """
        return cls(
            prior=[0.7, 0.3],
            receiver_utility=[[1.0, 0.0], [0.0, 1.0]],
            sender_utility=[[0.0, 1.0], [0.0, 1.0]],
            state_names=("innocent", "guilty"),
            action_names=("acquit", "convict"),
        )

    @classmethod
    def random(cls, seed: int | None = None, n_states: int = 3, n_actions: int = 3) -> "TabularGame":
        """A random game: prior ~ Dirichlet(1, ..., 1), utilities i.i.d. U[0, 1].

        Args:
            seed: Seed of ``numpy.random.default_rng`` (same seed, same game).
            n_states: Number of states (>= 2).
            n_actions: Number of Receiver actions (>= 2).

        Example:
            >>> g = TabularGame.random(seed=0, n_states=4, n_actions=2)
            >>> g.receiver_utility.shape, TabularGame.random(0, 4, 2).prior.tolist() == g.prior.tolist()
            ((4, 2), True)
        """
        args = check(_RandomGameArgs, "TabularGame.random", seed=seed, n_states=n_states, n_actions=n_actions)
        rng = np.random.default_rng(args.seed)
        n_states, n_actions = args.n_states, args.n_actions
        prior = rng.dirichlet(np.ones(n_states))
        prior = prior / prior.sum()
        ur = rng.random((n_states, n_actions))
        us = rng.random((n_states, n_actions))
        return cls(prior, ur, us)

    # ---- sizes

    @property
    def n_states(self) -> int:
        """Number of states."""
        return int(self.prior.size)

    @property
    def n_actions(self) -> int:
        """Number of Receiver actions (= signals of the revelation-principle scheme)."""
        return int(self.receiver_utility.shape[1])

    # ---- evaluation

    @cached_property
    def _ur_normalised(self) -> np.ndarray:
        # u_r shifted per state and divided by receiver_scale: same best responses, spread 1
        return (self.receiver_utility - self.receiver_utility.min(axis=1, keepdims=True)) / receiver_scale(
            self.receiver_utility)

    @cached_property
    def _lists(self) -> tuple[list[float], list[list[float]], list[list[float]], float]:
        # (prior, normalised u_r, u_s, largest |u_s| or 1) as Python lists, for the per-step fast paths below
        us_scale = float(np.abs(self.sender_utility).max())
        return self.prior.tolist(), self._ur_normalised.tolist(), self.sender_utility.tolist(), us_scale or 1.0

    def _best_response_fast(self, q: list[float]) -> int | None:
        """:meth:`best_response` of one posterior in plain Python, or ``None`` near a knife edge.

        For one round of an env, numpy on arrays of a few entries costs more than the arithmetic.
        The products are summed in another order than numpy's matrix product, so the expected
        utilities may differ from it in the last bits: where that could change the answer (an
        action within :data:`_EDGE` of the tolerance threshold, or two best responses the Sender
        values within ``_EDGE`` times the largest ``|u_s|``), ``None`` tells the caller to use
        :meth:`best_response`.  (``u_r`` is normalised to entries in [0, 1], so ``_EDGE`` is absolute there.)
        """
        _, ur, us, us_scale = self._lists
        tie = _EDGE * us_scale
        states = range(len(q))
        u = []
        for a in range(len(ur[0])):
            x = 0.0
            for w in states:
                x += q[w] * ur[w][a]
            u.append(x)
        threshold = max(u) - BEST_RESPONSE_RTOL
        best, best_value = -1, 0.0
        for a, x in enumerate(u):
            if abs(x - threshold) < _EDGE:
                return None
            if x >= threshold:
                v = 0.0
                for w in states:
                    v += q[w] * us[w][a]
                if best >= 0 and abs(v - best_value) <= tie:
                    return None
                if best < 0 or v > best_value:
                    best, best_value = a, v
        return best

    def _evaluate_fast(self, scheme: list[list[float]]) -> tuple[list[list[float]], list[int], float] | None:
        """:meth:`evaluate` of a row-normalised scheme (Python lists) in plain Python, or ``None``.

        Returns ``(posteriors, actions, value)`` as :class:`SchemeEvaluation` holds them; ``None``
        where a best response is on a knife edge (see :meth:`_best_response_fast`).  The
        posteriors are exactly numpy's (elementwise arithmetic, sums in numpy's order); the value
        may differ from :meth:`evaluate`'s in the last bits.
        """
        prior, _, us, _ = self._lists
        joint = [[mu * x for x in row] for mu, row in zip(prior, scheme)]
        p_signal = list(joint[0])
        for row in joint[1:]:
            for j, x in enumerate(row):
                p_signal[j] += x
        posts, actions = [], []
        for j, p in enumerate(p_signal):
            q = [row[j] / p for row in joint] if p > 0 else list(prior)
            a = self._best_response_fast(q)
            if a is None:
                return None
            posts.append(q)
            actions.append(a)
        value = 0.0
        for mu, row, u in zip(prior, scheme, us):
            x = 0.0
            for pj, a in zip(row, actions):
                x += pj * u[a]
            value += mu * x
        return posts, actions, value

    def best_response(self, posterior) -> np.ndarray:
        """:func:`best_response` with this game's utilities."""
        return _best_response(np.asarray(posterior, dtype=np.float64), self._ur_normalised, self.sender_utility,
                              BEST_RESPONSE_RTOL)

    def evaluate(self, scheme) -> SchemeEvaluation:
        """Play a scheme against the Bayesian Receiver (who knows prior and scheme).

        Args:
            scheme: ``(n_states, n_signals)`` weights, any ``n_signals >= 1``;
                normalised by :func:`normalize_scheme`.

        Returns:
            A :class:`SchemeEvaluation`.
        """
        s = normalize_scheme(scheme, self.n_states)
        post, p_sig = posteriors(self.prior, s)
        acts = self.best_response(post)
        state_values = (s * self.sender_utility[:, acts]).sum(axis=1)
        return SchemeEvaluation(s, post, p_sig, acts, state_values, float(self.prior @ state_values))

    def sender_value(self, scheme) -> float:
        """The Sender's expected utility of committing to ``scheme``.

        Example:
            >>> TabularGame.prosecutor().sender_value([[4, 3], [0, 1]])  # 4/7, 3/7 unnormalised
            0.6
        """
        return self.evaluate(scheme).value

    @cached_property
    def optimum(self) -> "OptimalScheme":
        """The optimal scheme (solved once per game, then cached)."""
        return _solve(self)

    # ---- vectorised sampling

    def sample_many(self, schemes, rng: np.random.Generator, size: int | None = None) -> "SampleBatch":
        """Play many independent rounds at once (numpy, no Python loop per round).

        Each round draws ``ω ~ μ``, ``σ ~ π_b(·|ω)``, lets the Bayesian Receiver
        (who knows ``π_b``) best-respond and pays ``u_s(ω, a)``.

        Args:
            schemes: ``(B, n_states, n_signals)`` (one scheme per round) or
                ``(n_states, n_signals)`` (the same scheme for ``size`` rounds).
                Validated like :func:`normalize_scheme` (vectorised).
            rng: A ``numpy.random.Generator``.
            size: Number of rounds when ``schemes`` is a single scheme.

        Returns:
            A :class:`SampleBatch` of length ``B``.

        Example:
            >>> g = TabularGame.prosecutor()
            >>> batch = g.sample_many(g.optimum.scheme, np.random.default_rng(0), size=100_000)
            >>> float(batch.expected_rewards[0]), bool(abs(batch.rewards.mean() - 0.6) < 0.01)
            (0.6, True)
        """
        s = as_float_array(schemes, "schemes")
        shared = s.ndim == 2
        if shared:
            if size is None:
                raise ConfigError("sample_many with a single scheme needs size >= 1 (the number of rounds)")
            size = check_value(PositiveInt, size, "size", "TabularGame.sample_many (size >= 1: the number of rounds)")
            ev = self.evaluate(s)
            state = sample_categorical(self.prior, rng, size)
            signal = sample_categorical(ev.scheme[state], rng)
            action = ev.actions[signal]
            expected = np.full(size, ev.value)
            return SampleBatch(state, signal, action, self.sender_utility[state, action], expected)
        if s.ndim != 3 or s.shape[1] != self.n_states:
            raise ConfigError(
                f"schemes must have shape (B, {self.n_states}, n_signals) or ({self.n_states}, n_signals), "
                f"got {s.shape}"
            )
        if size is not None and size != s.shape[0]:
            raise ConfigError(f"size={size} disagrees with the {s.shape[0]} schemes given; drop size")
        if not np.isfinite(s).all() or (s < 0).any():
            raise ConfigError("schemes have negative or non-finite entries; every row must be a nonnegative weight vector")
        sums = s.sum(axis=2, keepdims=True)
        if (sums <= 0).any():
            raise ConfigError("some scheme rows sum to 0; every state needs some signal probability")
        s = s / sums
        B = s.shape[0]
        joint = self.prior[None, :, None] * s  # (B, S, M)
        p_sig = joint.sum(axis=1)  # (B, M)
        post = np.where(p_sig[:, :, None] > 0, np.swapaxes(joint, 1, 2) / np.where(p_sig > 0, p_sig, 1.0)[:, :, None],
                        self.prior[None, None, :])  # (B, M, S)
        acts = self.best_response(post)  # (B, M)
        payoff = np.take_along_axis(
            np.broadcast_to(self.sender_utility[None], (B,) + self.sender_utility.shape), acts[:, None, :].repeat(self.n_states, 1), axis=2
        )  # (B, S, M): u_s(ω, a_b(σ))
        expected = (joint * payoff).sum(axis=(1, 2))
        state = sample_categorical(self.prior, rng, B)
        signal = sample_categorical(s[np.arange(B), state], rng)  # one signal per round, from its scheme's row
        action = acts[np.arange(B), signal]
        return SampleBatch(state, signal, action, self.sender_utility[state, action], expected)


@dataclass(frozen=True)
class SampleBatch:
    """Rounds played by :meth:`TabularGame.sample_many` (all arrays of length B).

    Attributes:
        states: Drawn states.
        signals: Drawn signals.
        actions: The Receiver's actions.
        rewards: Realised Sender utilities ``u_s(state, action)``.
        expected_rewards: Each round's scheme value (the Sender's expected
            utility, before state and signal are drawn).
    """

    states: np.ndarray
    signals: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    expected_rewards: np.ndarray

    def __len__(self) -> int:
        return int(self.states.size)


# --------------------------------------------------------------------------- benchmarks of the value


def no_information_value(game: TabularGame) -> float:
    """The Sender's value when nothing is revealed (the Receiver acts on the prior)."""
    return game.sender_value(np.ones((game.n_states, 1)))


def value_of_persuasion(game: TabularGame) -> float:
    """``V* − no_information_value(game)``: what the Sender gains from a well-chosen scheme.

    Near 0 the game is trivial for learning: every policy, even "say nothing", is nearly optimal.

    Example:
        >>> value_of_persuasion(TabularGame.prosecutor())
        0.6
        >>> value_of_persuasion(TabularGame.random(seed=3))  # nothing to persuade about
        0.0
    """
    return game.optimum.value - no_information_value(game)


def full_information_value(game: TabularGame) -> float:
    """The Sender's value when the state is revealed (one signal per state)."""
    return game.sender_value(np.eye(game.n_states))


# --------------------------------------------------------------------------- the LP


@dataclass(frozen=True)
class OptimalScheme:
    """The Sender-optimal scheme of a game (see :func:`optimal_scheme`).

    Attributes:
        scheme: ``(n_states, n_actions)``; row ``ω`` = ``π*(·|ω)``; signal
            ``a`` recommends action ``a``.
        value: The Sender's optimal expected utility ``V*``, evaluated as
            :meth:`TabularGame.sender_value` of ``scheme`` (so a learner
            replaying ``scheme`` has regret exactly 0).
        state_values: ``V*(ω) = Σ_σ π*(σ|ω) u_s(ω, a*(σ))``; ``prior @
            state_values == value``.
        actions: The Receiver's best response ``a*(σ)`` to each signal.
        lp_value: The LP's own objective (equal to ``value`` up to ~1e-9).
    """

    scheme: np.ndarray
    value: float
    state_values: np.ndarray
    actions: np.ndarray
    lp_value: float


def optimal_scheme(prior, receiver_utility, sender_utility, margin: float = 0.0) -> OptimalScheme:
    """Solve the Sender's commitment problem exactly by linear programming.

    Variables are the joint probabilities ``x[ω, a] = μ(ω) π(a|ω)`` (signal =
    recommended action).  Maximise ``Σ_ω Σ_a x[ω, a] u_s(ω, a)`` subject to
    ``Σ_a x[ω, a] = μ(ω)``, ``x >= 0`` and obedience: for all ``a ≠ a'``,
    ``Σ_ω x[ω, a] (u_r(ω, a) − u_r(ω, a')) >= 0``.  Solved with
    ``scipy.optimize.linprog(method="highs")``.

    **Scale invariance.**  Obedience does not change when ``u_r`` is
    multiplied by a positive number or shifted by a constant per state, and
    the optimal scheme does not change when ``u_s`` is.  So the LP sees both
    tables normalised (see :func:`receiver_scale`), and each obedience row is
    divided by its largest coefficient: utilities from 1e-9 to 1e9 give the
    same scheme.  Joint variables keep the constraint matrix independent of
    the prior, so priors down to 1e-12 (or exactly 0) work; ``π(·|ω)`` is
    recovered as ``x[ω, ·] / μ(ω)``.  A state of prior 0 never occurs and
    moves no posterior: it gets the signal whose action is best for the
    Sender in that state (so ``state_values`` stays meaningful).

    The returned value is the scheme *evaluated* by
    :meth:`TabularGame.sender_value` (so replaying it has regret exactly 0),
    and it is checked to be at least the no-information and the
    full-information value.

    **Obedience margin.**  With ``margin > 0`` every recommended action must
    beat each other action by at least ``margin * receiver_scale(u_r)`` in the
    Receiver's posterior expected utility (pairs of actions the Receiver
    always values equally are exempt).  A Receiver that *estimates* the
    posterior (the tabular env's signal mode) still obeys such a scheme while
    its estimate is within the margin; the price is ``O(margin)`` of value.

    Args:
        prior: Shape ``(n_states,)``.
        receiver_utility: Shape ``(n_states, n_actions)``.
        sender_utility: Shape ``(n_states, n_actions)``.
        margin: Obedience margin in ``[0, 1)``, in units of
            :func:`receiver_scale` (default 0: the exact optimum).

    Returns:
        An :class:`OptimalScheme` (``value`` is then the margin scheme's value).

    Raises:
        ConfigError: invalid arrays (see :func:`validate_game`), or no scheme
            has the requested margin (lower it).

    Example:
        >>> opt = optimal_scheme([0.5, 0.5], [[1, 0], [0, 1]], [[1, 1], [0, 0]])
        >>> opt.value  # the Sender's utility does not depend on the action
        0.5
        >>> optimal_scheme([.7, .3], [[1e-9, 0], [0, 1e-9]], [[0, 1], [0, 1]]).value  # any scale of u_r
        0.6
        >>> round(optimal_scheme([.7, .3], [[1, 0], [0, 1]], [[0, 1], [0, 1]], margin=0.2).value, 6)  # P(g|convict) = .6
        0.5
    """
    game = TabularGame(*validate_game(prior, receiver_utility, sender_utility))
    m = check_value(_Margin, margin, "margin", "optimal_scheme")
    return _solve(game, m)


def _solve(game: "TabularGame", margin: float = 0.0) -> OptimalScheme:
    from scipy.optimize import linprog

    mu, ur, us = game.prior, game._ur_normalised, _normalised(game.sender_utility)
    S, A = ur.shape
    c = -us.ravel()  # x is (S, A) row-major
    a_eq = np.kron(np.eye(S), np.ones((1, A)))
    rows = []
    for a in range(A):
        for b in range(A):
            d = ur[:, a] - ur[:, b]
            if a != b and np.abs(d).max() > 0:
                d = d - margin
                row = np.zeros((S, A))
                row[:, a] = -d / float(np.abs(d).max())
                rows.append(row.ravel())
    a_ub = np.array(rows) if rows else None
    b_ub = np.zeros(len(rows)) if rows else None
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=mu, bounds=(0.0, None), method="highs",
                  options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10})
    if res.status == 2 and margin > 0:
        raise ConfigError(f"no scheme of this game has obedience margin {margin}; use a smaller margin")
    if res.status != 0:  # pragma: no cover - the full-information scheme is always feasible
        raise RuntimeError(f"the persuasion LP failed ({res.message}); this is a bug, please report the game")
    x = np.clip(res.x.reshape(S, A), 0.0, None)
    sums = x.sum(axis=1)
    occurs = (mu > 0) & (sums > 0)
    scheme = np.zeros((S, A))
    scheme[occurs] = x[occurs] / sums[occurs, None]
    scheme[~occurs] = 1.0 / A  # placeholder: these rows move no posterior
    ev = game.evaluate(scheme)
    if not occurs.all():  # never-occurring states: the signal whose response the Sender likes best there
        best = game.sender_utility[:, ev.actions].argmax(axis=1)
        scheme[~occurs] = np.eye(A)[best[~occurs]]
        ev = game.evaluate(scheme)
    spread = float(np.ptp(game.sender_utility)) or 1.0
    floor = max(no_information_value(game), full_information_value(game))
    if margin == 0 and ev.value < floor - 1e-9 * spread:  # pragma: no cover - guarded by the scaled-game tests
        raise RuntimeError(
            f"the persuasion LP returned a scheme worth {ev.value!r}, below the no-/full-information value "
            f"{floor!r}; this is a bug, please report the game"
        )
    if margin == 0 and ev.value < floor:
        # LP round-off (HiGHS works to ~1e-10) can leave the scheme a few ulps below a benchmark scheme,
        # which is itself a valid scheme: return the best of the three, so V* >= both benchmarks exactly.
        for candidate in _benchmark_schemes(game):
            cand = game.evaluate(candidate)
            if cand.value > ev.value:
                ev = cand
    for arr in (ev.scheme, ev.state_values, ev.actions):
        arr.setflags(write=False)
    lp_value = float((x * game.sender_utility).sum())
    return OptimalScheme(ev.scheme, ev.value, ev.state_values, ev.actions, lp_value)


def _benchmark_schemes(game: "TabularGame") -> list[np.ndarray]:
    """The no-information and full-information schemes in revelation form (signal ``a`` recommends action ``a``).

    No information: every state sends the signal of the prior's best
    response.  Full information: state ``ω`` sends the signal of its own best
    response; merging states that share a recommendation leaves each of them
    a best response (obedience is linear), and ties go to the Sender, so the
    value is at least :func:`full_information_value`.
    """
    S, A = game.n_states, game.n_actions
    no_info = np.zeros((S, A))
    no_info[:, int(game.best_response(game.prior))] = 1.0
    full = np.eye(A)[game.best_response(np.eye(S))]
    return [no_info, full]


def tolerance_supremum(game: "TabularGame") -> float:
    """The most any scheme can earn against the tolerance-based best response (:func:`best_response`).

    The Receiver plays any action within ``BEST_RESPONSE_RTOL * receiver_scale``
    of its best, ties to the Sender; that is obedience relaxed by the
    tolerance, which is linear in the joint ``μ(ω)π(a|ω)``, so the supremum
    over all schemes is the LP with that relaxed obedience.  Every scheme's
    value lies in ``[.., tolerance_supremum(game)]`` and
    ``tolerance_supremum(game) - game.optimum.value`` is the largest negative
    regret the tolerance can produce.

    Example:
        >>> g = TabularGame.prosecutor()
        >>> 0 <= tolerance_supremum(g) - g.optimum.value < 1e-5
        True
    """
    return _solve(game, margin=-BEST_RESPONSE_RTOL).lp_value


def _numpy_sum(xs: list[float]) -> float:
    """The sum of ``xs`` in the order ``np.add.reduce`` adds a contiguous float64 array (pairwise, blocks of 8).

    Used by the plain-Python fast paths so that they round exactly as numpy does.

    Example:
        >>> xs = [0.1, 0.2, 0.3, 1e16, 1.0, -1e16, 0.7, 0.9, 3.0]
        >>> _numpy_sum(xs) == float(np.add.reduce(np.array(xs)))
        True
    """
    n = len(xs)
    if n < 8:
        total = 0.0
        for x in xs:
            total += x
        return total
    if n <= 128:
        r = xs[:8]
        i = 8
        stop = n - n % 8
        while i < stop:
            for j in range(8):
                r[j] += xs[i + j]
            i += 8
        total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for x in xs[i:]:
            total += x
        return total
    half = n // 2
    half -= half % 8
    return _numpy_sum(xs[:half]) + _numpy_sum(xs[half:])


def _normalised(u: np.ndarray) -> np.ndarray:
    """``u`` shifted per row to min 0 and divided by the largest row spread (1 if all rows are constant)."""
    shifted = u - u.min(axis=1, keepdims=True)
    scale = float(shifted.max())
    return shifted / scale if scale > 0 else shifted


def receiver_scale(receiver_utility) -> float:
    """The scale of the Receiver's utility that obedience sees: ``max_ω (max_a u_r − min_a u_r)``.

    Best responses are invariant to a positive scale and to a per-state
    shift of ``u_r``; so is this scale (1 when every row is constant).  The
    best-response tolerance is :data:`BEST_RESPONSE_RTOL` times it.

    Example:
        >>> receiver_scale([[1e9 + 2, 1e9], [5, 5]])
        2.0
    """
    ur = np.asarray(receiver_utility, dtype=np.float64)
    spread = float((ur.max(axis=1) - ur.min(axis=1)).max())
    return spread if spread > 0 else 1.0


__all__: Sequence[str] = (
    "BEST_RESPONSE_RTOL",
    "OptimalScheme",
    "SampleBatch",
    "SchemeEvaluation",
    "TabularGame",
    "as_float_array",
    "best_response",
    "full_information_value",
    "no_information_value",
    "normalize_scheme",
    "optimal_scheme",
    "posteriors",
    "receiver_scale",
    "tolerance_supremum",
    "validate_game",
    "value_of_persuasion",
)
