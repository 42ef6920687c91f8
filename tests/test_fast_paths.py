"""The per-step fast paths give the same results as the general paths they shortcut (issue 9, item 5).

Each fast path is compared with the general one on many random inputs (hypothesis): the GSM8K
scorer's marker search, LaTeX clean-up, exact decimals and cached golds; the one-draw categorical
sampler; numpy's summation order; the tabular env's plain-Python rounds in both modes; the LLM
env's plain-index actions.
"""

from __future__ import annotations

import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpa_gym.common.sampling import sample_categorical
from bpa_gym.envs.tabular import TabularPersuasionEnv
from bpa_gym.persuasion import TabularGame, _numpy_sum
from bpa_gym.tasks import gsm8k as G
from bpa_gym.types import Item

# ------------------------------------------------------------------------------------------ GSM8K scorer

_PIECES = ["answer", "Answer", "ANSWER", "final", "Final ", "FINAL", "anſwer", "fınal", "İ", "ı", " is ", ": ", "=",
           "#", "####", "\n", "A:", " A :", "> A:", "a:", "18", "3.5", "1,234", " ", "to the question", "was",
           "would be", "x", "\\boxed{7}", "**", "\\text{5}", "\\frac{1}{2}", "<<2*3=6>>", "$", "\\$", "{,}", "1\\,000",
           "\\left(", "Question: ", "Q:", "é", "K"]
texts = st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=3)), max_size=16).map("".join)


@given(texts)
@settings(max_examples=800, deadline=None)
def test_marker_search_finds_what_the_regex_scan_finds(text):
    assert [m.span() for m in G._markers(text)] == [m.span() for m in G._MARKER_RE.finditer(text)]


def _clean_reference(text: str) -> str:  # the clean-up as it was, every substitution applied
    text = G._CALCULATOR.sub("", text)
    text = text.replace("**", "").replace("\\$", "$").replace("\\%", "%").replace("{,}", ",")
    text = re.sub(r"(?<=\d)\\[,!;: ](?=\d{3}(?!\d))", ",", text)
    for _ in range(3):
        text = G._LATEX_WRAPPERS.sub(r"\1", text)
    text = G._LATEX_FRAC.sub(r"\1/\2", text)
    text = G._LATEX_FRAC_SHORT.sub(r"\1/\2", text)
    return re.sub(r"\\(?:left|right)(?=[()\[\]])", "", text)


@given(texts)
@settings(max_examples=500, deadline=None)
def test_clean_skips_only_substitutions_that_cannot_apply(text):
    assert G._clean(text) == _clean_reference(text)


def _truncate_runaway_reference(text: str) -> str:  # as it was: one regex search
    first_digit = re.search(r"\d", text)
    if first_digit is None:
        return text
    header = G._NEW_QUESTION_RE.search(text, first_digit.start() + 1)
    return text if header is None else text[: header.start()]


def _read_reference(match):  # as it was: every number through Fraction
    if match is None:
        return None, None
    try:
        value = G._to_fraction(match)
    except G._Unreadable as e:
        return None, f"the answer is unreadable: {e}"
    if value is None:
        return None, f"the answer {match.group()!r} divides by zero"
    return G._format(value), None


numbers = st.from_regex(r"\A[-\u2212]?\$?[-]?(\d{1,4}(,\d{3}){0,3}|\d{99,102})(\.\d{1,3})?([eE][-+]?\d{1,3})?\Z")
answer_texts = st.lists(st.one_of(st.sampled_from(_PIECES), numbers, st.text(max_size=3)), max_size=16).map("".join)


@given(st.one_of(texts, answer_texts))
@settings(max_examples=400, deadline=None)
def test_read_answer_is_unchanged_by_the_fast_paths(text):
    fast = G.read_answer(text)
    saved = G._markers, G._truncate_runaway, G._read
    try:  # the general paths: scan every position, search once, read every number through Fraction
        G._markers, G._truncate_runaway, G._read = G._MARKER_RE.finditer, _truncate_runaway_reference, _read_reference
        slow = G.read_answer(text)
    finally:
        G._markers, G._truncate_runaway, G._read = saved
    assert fast == slow


@given(st.one_of(texts, answer_texts))
@settings(max_examples=300, deadline=None)
def test_truncate_runaway_cuts_where_the_search_does(text):
    assert G._truncate_runaway(text) == _truncate_runaway_reference(text)


@given(numbers)
def test_integer_fast_read_equals_the_fraction_read(text):
    match = G._match_number(text, 0)
    if match is not None:
        assert G._read(match) == _read_reference(match)


@given(st.from_regex(r"\A(\d{1,30}(\.\d{1,30})?|\.\d{1,30})\Z"))
def test_decimal_fraction_equals_fractions_parser(digits):
    assert G._decimal_fraction(digits) == Fraction(digits)


@given(st.one_of(st.from_regex(r"\A-?\$?\d{1,12}(,\d{3})*(\.\d{1,6})?\Z"), st.sampled_from(["1/2", "7", "0.50", "x"])),
       texts)
@settings(max_examples=500, deadline=None)
def test_cached_gold_scores_like_a_fresh_read(gold, response):
    item = Item("x", "q", gold)
    task = G.GSM8KTask.__new__(G.GSM8KTask)
    fresh = G._normalize(gold)
    assert G._normalize_gold(gold) == fresh == G._normalize_gold(gold)  # cached, twice: the same
    if fresh[0] is None:
        return
    got = task.score(response, item)
    reading = G.read_answer(response)
    if got.status == "ok":
        x, y = Fraction(reading.answer), Fraction(fresh[0])
        assert got.correct == (x == y or abs(float(x) - float(y)) <= max(1e-9 * max(abs(float(x)), abs(float(y))), 1e-9))


# ------------------------------------------------------------------------------------------ sampling, sums

probabilities = st.lists(st.floats(0, 1, allow_nan=False) | st.sampled_from([0.0, 1.0, 0.5, 1e-300]),
                         min_size=1, max_size=12)


@given(probabilities, st.integers(0, 2 ** 32 - 1))
def test_list_draw_equals_array_draw_and_uses_the_same_random_number(probs, seed):
    if sum(probs) > 0:
        probs = [p / sum(probs) for p in probs]
    fast_rng, slow_rng = np.random.default_rng(seed), np.random.default_rng(seed)
    for _ in range(3):
        assert sample_categorical(list(probs), fast_rng) == sample_categorical(np.array(probs), slow_rng)
    assert fast_rng.random() == slow_rng.random()


def test_list_draw_leaves_other_inputs_to_numpy():
    rng = np.random.default_rng(0)
    assert sample_categorical([[1.0, 0.0], [0.0, 1.0]], rng).tolist() == [0, 1]  # 2-D list
    assert sample_categorical([0, 1], rng) == 1  # ints
    assert sample_categorical([0.0, float("nan"), 1.0], np.random.default_rng(1)) == \
        sample_categorical(np.array([0.0, float("nan"), 1.0]), np.random.default_rng(1))


@given(st.lists(st.floats(-1e300, 1e300) | st.floats(-1, 1), min_size=1, max_size=300))
def test_numpy_sum_rounds_as_numpy(xs):
    assert _numpy_sum(list(xs)) == float(np.add.reduce(np.array(xs)))


@given(st.integers(1, 12), st.integers(1, 20), st.integers(0, 2 ** 32 - 1))
def test_numpy_sum_rounds_as_numpy_row_sums(rows, cols, seed):
    a = np.random.default_rng(seed).random((rows, cols)) * 10.0 ** np.random.default_rng(seed + 1).integers(-8, 8)
    assert [_numpy_sum(r) for r in a.tolist()] == a.sum(axis=1).tolist()


# ------------------------------------------------------------------------------------------ tabular env

def _rounds(env, actions, seed):
    env.reset(seed=seed)
    out = []
    for action in actions:
        _, reward, terminated, _, info = env.step(action)
        out.append((reward, info))
        if terminated:
            env.reset()
    return out


def _same(fast, slow, exact_expected):
    for (r1, i1), (r2, i2) in zip(fast, slow):
        assert (r1, i1["state"], i1["signal"], i1["receiver_action"]) == (r2, i2["state"], i2["signal"],
                                                                          i2["receiver_action"])
        assert type(r1) is float and type(i1["receiver_action"]) is int
        assert i1["posterior"].dtype == np.float64 and i1["posterior"].tolist() == i2["posterior"].tolist()
        if exact_expected:
            assert i1["expected_reward"] == i2["expected_reward"]
        else:
            assert i1["expected_reward"] == pytest.approx(i2["expected_reward"], rel=1e-12, abs=1e-12)


game_args = st.tuples(st.integers(0, 10 ** 6), st.integers(2, 5), st.integers(2, 5), st.integers(0, 3))


@given(game_args, st.integers(0, 2 ** 32 - 1), st.booleans())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_scheme_round_fast_path_equals_general_path(game, seed, zero_rows):
    game_seed, n_states, n_actions, extra = game
    g = TabularGame.random(game_seed, n_states, n_actions)
    m = n_actions + extra
    rng = np.random.default_rng(seed)
    actions = []
    for _ in range(6):
        a = rng.random((n_states, m)).astype(np.float32)
        a[a < 0.3] = 0.0
        if zero_rows:
            a[rng.integers(n_states)] = 0.0
        actions.append(a)
    actions.append(g.optimum.scheme.astype(np.float32)[:, :m] if m == n_actions else actions[0])
    fast = TabularPersuasionEnv(game=g, action="scheme", num_signals=m, episode_length=3)
    slow = TabularPersuasionEnv(game=g, action="scheme", num_signals=m, episode_length=3)
    slow._scheme_round_fast = lambda action: None  # the general path: evaluate(scheme_of(action))
    _same(_rounds(fast, actions, seed), _rounds(slow, actions, seed), exact_expected=False)


def test_scheme_round_fast_path_handles_the_prosecutor_optimum_exactly():
    g = TabularGame.prosecutor()
    fast, slow = TabularPersuasionEnv(game=g), TabularPersuasionEnv(game=g)
    slow._scheme_round_fast = lambda action: None
    actions = [g.optimum.scheme.astype(np.float32)] * 200 + [np.array([[0.0, 0.0], [0.0, 1.0]], np.float32)] * 50
    _same(_rounds(fast, actions, 3), _rounds(slow, actions, 3), exact_expected=False)
    assert fast._scheme_round_fast(actions[0]) is not None  # the optimum (a knife edge in float64) is fast


@given(game_args, st.integers(0, 2 ** 32 - 1), st.sampled_from([0.5, 1.0, 3.0]))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_signal_round_fast_path_equals_general_path(game, seed, pseudo_count):
    game_seed, n_states, n_actions, extra = game
    g = TabularGame.random(game_seed, n_states, n_actions)
    m = n_actions + extra
    actions = [int(x) for x in np.random.default_rng(seed).integers(0, m, 60)]
    actions[::7] = [np.int64(a) for a in actions[::7]]
    fast = TabularPersuasionEnv(game=g, action="signal", num_signals=m, pseudo_count=pseudo_count)
    slow_game = TabularGame.random(game_seed, n_states, n_actions)
    object.__setattr__(slow_game, "_best_response_fast", lambda q: None)  # numpy decides every best response
    slow = TabularPersuasionEnv(game=slow_game, action="signal", num_signals=m, pseudo_count=pseudo_count)
    _same(_rounds(fast, actions, seed), _rounds(slow, actions, seed), exact_expected=True)
    assert fast.receiver_counts.tolist() == slow.receiver_counts.tolist()


@given(st.lists(st.floats(0, 1), min_size=2, max_size=6), game_args)
@settings(max_examples=300, deadline=None)
def test_best_response_fast_path_agrees_with_numpy_or_defers(weights, game):
    game_seed, n_states, n_actions, _ = game
    g = TabularGame.random(game_seed, n_states, n_actions)
    q = (weights * n_states)[:n_states]
    if sum(q) == 0:
        return
    q = [x / sum(q) for x in q]
    fast = g._best_response_fast(q)
    assert fast is None or fast == int(g.best_response(np.array(q)))


# ------------------------------------------------------------------------------------------ LLM env

def test_llm_step_plain_index_fast_path_equals_the_checked_path(shared_data_dir):
    import gymnasium as gym

    from bpa_gym.receivers.scripted import ScriptedReceiver

    receiver = ScriptedReceiver(lambda m: "9 * 2 = 18. The answer is 18.", finish_reason="stop")
    env = gym.make("BayesPersuasion-GSM8K-v0", receiver=receiver, data_dir=str(shared_data_dir), subset_size=5)
    infos = []
    for action in (3, np.int64(3), np.array(3), np.int32(3)):  # the last two take the checked path
        env.reset(seed=0)
        _, reward, *_, info = env.step(action)
        infos.append((reward, {k: v for k, v in info.items() if k != "latency_s"}))
    assert all(x == infos[0] for x in infos)
    env.reset(seed=0)
    with pytest.raises(Exception, match="outside the action space"):
        env.unwrapped.step(10 ** 30)
