"""Regret of every reference learner on the tabular persuasion games (exact LP oracle).

Run from the repository root::

    python benchmarks/regret_tabular.py                 # defaults: T=10000, 5 seeds, ~2-3 min on 2 cores
    python benchmarks/regret_tabular.py --T 100000      # the long run (~15-25 min on 2 cores)
    python benchmarks/regret_tabular.py --quick         # smoke test, seconds

Learners (``agents/``): the Zu-Iyer-Xu robust persuasion learner in
``action="scheme"`` mode; in ``action="signal"`` mode (the Receiver learns
the signals' meaning from their frequencies) the margin learner (signals
sampled from the optimal scheme with a decaying obedience margin: sublinear
regret) and the myopic baselines UCB1, Thompson sampling, Exp3, LinUCB and
"always recommend the Sender's favourite" (linear regret: the Receiver learns
to ignore their signals).  ``--games`` and ``--learners`` pick subsets, e.g.
the signal-mode comparison at T = 10^5::

    python benchmarks/regret_tabular.py --T 100000 --seeds 3 --T-vector 0 \
        --learners margin-signal,ucb1,thompson,exp3,linucb,myopic  Games: the
prosecutor and three random games (2-5 states, 2-4 actions).  Every run goes
through ``gymnasium`` + :class:`~bpa_gym.wrappers.regret.RegretWrapper` with
TensorBoard logs under ``OUT/tb/<game>/<learner>/seed<k>``.

Printed table, per (learner, game): ``R_T`` (mean ± std over seeds of the
cumulative pseudo-regret), ``R_T/bound`` (bound ``c m^1.5 sqrt(T log T)``,
``c = 1``, ``m`` = number of signals), the log-log slope of the mean ``R_t``
over the second half (1/2 is ``sqrt(T)`` growth, 1 is linear; ``n/a`` when
``R_t <= 0`` there, as can happen in signal mode where the per-state optimum is
the reference) and the mean sampled reward next to ``V*``.  Extra rows run the
persuasion learner on the vectorised numpy path to ``T = 10^6``
(``--T-vector``).  Finally it times steps/s of the vectorised path against the
per-step Gymnasium path.

Writes ``OUT/results.json`` and ``OUT/regret_<game>.png`` (log-log, via
:func:`bpa_gym.plotting.plot_regret`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `agents` from the repo root

import bpa_gym  # noqa: E402,F401  (registers the envs)
from agents.bandits import UCB1, Exp3, LinUCB, ThompsonSampling, run_bandit  # noqa: E402
from agents.persuasion_learner import (  # noqa: E402
    MarginSignalLearner,
    MyopicAgent,
    RobustPersuasionLearner,
    run_vectorised,
)
from bpa_gym.envs.tabular import TabularPersuasionEnv  # noqa: E402
from bpa_gym.persuasion import TabularGame  # noqa: E402
from bpa_gym.plotting import load_regret_group, plot_regret  # noqa: E402
from bpa_gym.wrappers.regret import RegretWrapper, regret_bound  # noqa: E402

#: game name -> constructor.  The random games (2-5 states, 2-4 actions) are seeds where persuasion
#: matters: V* beats both no information and full information by > 0.2.
GAMES = {
    "prosecutor": lambda: TabularGame.prosecutor(),
    "random-2x3": lambda: TabularGame.random(seed=352, n_states=2, n_actions=3),
    "random-3x4": lambda: TabularGame.random(seed=189, n_states=3, n_actions=4),
    "random-5x2": lambda: TabularGame.random(seed=15, n_states=5, n_actions=2),
}

#: learner name -> (env action mode, factory(env, T, seed)).  Agents get seed + AGENT_SEED_OFFSET: an agent
#: seeded like the env would draw the same uniforms as the env's state draws (correlated play).
AGENT_SEED_OFFSET = 10_000
LEARNERS = {
    "zu-iyer-xu": ("scheme", lambda env, T, s: RobustPersuasionLearner.from_env(env)),
    "margin-signal": ("signal", lambda env, T, s: MarginSignalLearner.from_env(env, seed=s)),
    "ucb1": ("signal", lambda env, T, s: UCB1(env.unwrapped.num_signals, seed=s)),
    "thompson": ("signal", lambda env, T, s: ThompsonSampling(env.unwrapped.num_signals, seed=s)),
    "exp3": ("signal", lambda env, T, s: Exp3(env.unwrapped.num_signals, horizon=T, seed=s)),
    "linucb": ("signal", lambda env, T, s: LinUCB(env.unwrapped.num_signals,
                                                   n_contexts=env.unwrapped.game.n_states, seed=s)),
    "myopic": ("signal", lambda env, T, s: MyopicAgent.from_env(env)),
}


def _one_run(job: tuple[str, str, int, int, str]) -> dict:
    learner, game_name, seed, T, log_dir = job
    mode, factory = LEARNERS[learner]
    env = RegretWrapper(TabularPersuasionEnv(game=GAMES[game_name](), action=mode), log_dir=log_dir)
    agent = factory(env, T, seed + AGENT_SEED_OFFSET)
    t0 = time.perf_counter()
    stats = run_bandit(env, agent, total_steps=T, seed=seed)
    wall = time.perf_counter() - t0
    env.close()
    return {"learner": learner, "game": game_name, "seed": seed, "R_T": stats["final_regret"]["cumulative"],
            "bound": stats["final_regret"]["bound"], "mean_reward": stats["mean_reward"], "wall_s": wall}


def loglog_slope(steps: np.ndarray, values: np.ndarray, T: int) -> float | None:
    """Least-squares slope of log R_t on log t over t in [T/2, T]; None if some R_t <= 0 there."""
    sel = steps >= T / 2
    if sel.sum() < 2 or np.any(values[sel] <= 0):
        return None
    return float(np.polyfit(np.log(steps[sel]), np.log(values[sel]), 1)[0])


def time_paths(n_gym: int, n_vec: int) -> dict:
    """Steps/s of the per-step Gymnasium path vs the vectorised numpy path (same game, scheme mode)."""
    game = GAMES["random-3x4"]()
    rng = np.random.default_rng(0)
    scheme = rng.random((game.n_states, game.n_actions))
    env = RegretWrapper(TabularPersuasionEnv(game=game))
    env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(n_gym):
        env.step(scheme)
        env.reset()
    gym_sps = n_gym / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    game.sample_many(scheme, rng, size=n_vec)
    shared_sps = n_vec / (time.perf_counter() - t0)
    schemes = rng.random((min(n_vec, 10 ** 6), game.n_states, game.n_actions))
    t0 = time.perf_counter()
    game.sample_many(schemes, rng)
    many_sps = len(schemes) / (time.perf_counter() - t0)
    return {"gym_env_with_regret_wrapper": gym_sps, "vector_one_scheme": shared_sps,
            "vector_scheme_per_round": many_sps}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--T", type=int, default=10_000, help="steps per run (Gymnasium path), default 10000")
    p.add_argument("--T-vector", type=int, default=1_000_000, help="steps of the vectorised persuasion-learner runs")
    p.add_argument("--seeds", type=int, default=5, help="seeds per (learner, game), default 5")
    p.add_argument("--out-dir", default="runs/regret_tabular", help="output folder (JSON, PNGs, TensorBoard logs)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="parallel processes")
    p.add_argument("--quick", action="store_true", help="tiny run: T=2000, 2 seeds, T-vector=50000")
    p.add_argument("--games", default=",".join(GAMES), help=f"comma-separated subset of {', '.join(GAMES)}")
    p.add_argument("--learners", default=",".join(LEARNERS),
                   help=f"comma-separated subset of {', '.join(LEARNERS)}")
    args = p.parse_args(argv)
    games = [g for g in args.games.split(",") if g]
    learners = [ln for ln in args.learners.split(",") if ln]
    unknown = sorted(set(games) - set(GAMES)) + sorted(set(learners) - set(LEARNERS))
    if unknown:
        p.error(f"unknown game(s)/learner(s) {unknown}")
    if args.quick:
        args.T, args.seeds, args.T_vector = 2000, 2, 50_000
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    T = args.T

    jobs = [(ln, gn, s, T, str(out / "tb" / gn / ln / f"seed{s}"))
            for gn in games for ln in learners for s in range(args.seeds)]
    t0 = time.perf_counter()
    if args.workers > 1:
        with get_context("fork").Pool(args.workers) as pool:
            runs = pool.map(_one_run, jobs, chunksize=1)
    else:
        runs = [_one_run(j) for j in jobs]
    wall_runs = time.perf_counter() - t0

    rows = []
    for gn in games:
        game = GAMES[gn]()
        for ln in learners:
            rs = [r for r in runs if r["learner"] == ln and r["game"] == gn]
            R = np.array([r["R_T"] for r in rs])
            group = load_regret_group(out / "tb" / gn / ln)
            rows.append({
                "learner": ln, "game": gn, "mode": LEARNERS[ln][0], "T": T, "seeds": len(rs),
                "m": game.n_actions, "V*": game.optimum.value,
                "R_T_mean": float(R.mean()), "R_T_std": float(R.std()), "bound": rs[0]["bound"],
                "ratio": float(R.mean() / rs[0]["bound"]),
                "slope": loglog_slope(group["steps"], group["mean"], T),
                "mean_reward": float(np.mean([r["mean_reward"] for r in rs])),
            })
        if "zu-iyer-xu" not in learners or args.T_vector <= 0:
            continue
        vec = []
        for s in range(args.seeds):
            v = run_vectorised(game, RobustPersuasionLearner(game.receiver_utility, game.sender_utility),
                               args.T_vector, seed=1000 + s)
            vec.append(v)
        Rv = np.stack([v["cumulative_regret"] for v in vec])
        steps = np.unique(np.geomspace(1, args.T_vector, 200).astype(int))
        bound_v = regret_bound(args.T_vector, game.n_actions)
        rows.append({
            "learner": "zu-iyer-xu[vector]", "game": gn, "mode": "scheme", "T": args.T_vector, "seeds": args.seeds,
            "m": game.n_actions, "V*": game.optimum.value,
            "R_T_mean": float(Rv[:, -1].mean()), "R_T_std": float(Rv[:, -1].std()), "bound": bound_v,
            "ratio": float(Rv[:, -1].mean() / bound_v),
            "slope": loglog_slope(steps, Rv.mean(axis=0)[steps - 1], args.T_vector),
            "mean_reward": float(np.mean([v["mean_reward"] for v in vec])),
        })

    speed = time_paths(n_gym=5_000 if args.quick else 30_000, n_vec=10 ** 6)

    header = f"{'learner':<20}{'game':<12}{'mode':<8}{'T':>9}{'R_T (mean±std)':>22}{'R_T/bound':>11}{'slope':>8}{'reward':>9}{'V*':>8}"
    lines = [header, "-" * len(header)]
    for r in rows:
        slope = "n/a" if r["slope"] is None else f"{r['slope']:.2f}"
        lines.append(f"{r['learner']:<20}{r['game']:<12}{r['mode']:<8}{r['T']:>9}"
                     f"{r['R_T_mean']:>13.1f} ± {r['R_T_std']:<6.1f}{r['ratio']:>11.3f}{slope:>8}"
                     f"{r['mean_reward']:>9.3f}{r['V*']:>8.3f}")
    print("\n".join(lines))
    g = speed["gym_env_with_regret_wrapper"]
    print(f"\nsteps/s: Gymnasium env + RegretWrapper {g:,.0f} | vectorised, one scheme "
          f"{speed['vector_one_scheme']:,.0f} ({speed['vector_one_scheme'] / g:,.0f}x) | vectorised, a scheme per "
          f"round {speed['vector_scheme_per_round']:,.0f} ({speed['vector_scheme_per_round'] / g:,.0f}x)")
    print(f"{len(jobs)} Gymnasium runs of T={T} in {wall_runs:.1f} s with {args.workers} worker(s)")

    pngs = []
    for gn in games:
        pngs.append(str(plot_regret([out / "tb" / gn / ln for ln in learners], out / f"regret_{gn}.png", loglog=True,
                                    labels=learners, title=f"{gn}: cumulative pseudo-regret, T={T}")))
    result = {"args": vars(args), "rows": rows, "runs": runs, "steps_per_s": speed, "pngs": pngs,
              "tensorboard": str(out / "tb")}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'results.json'}, {', '.join(pngs)}; TensorBoard logs under {out / 'tb'}")
    return result


if __name__ == "__main__":
    main()
