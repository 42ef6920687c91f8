"""The ``bpa-gym`` command line.

Commands:
    envs          list the registered environments
    signals       print an env's signal library with indices
    eval          evaluate a fixed signal on the first N items (batched), with a 95% Wilson interval
    oracle-table  play every signal on every item once (greedy) and save the table for regret
    plot-regret   plot cumulative regret vs. the bound from TensorBoard logs (PNG)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence


def _cmd_envs(args: argparse.Namespace) -> int:
    import bpa_gym

    for env_id, _, _, doc in bpa_gym.ENV_SPECS:
        print(f"{env_id:36s} {doc}")
    return 0


def _make_env(args: argparse.Namespace):
    """The unwrapped env named by ``--env``; ``--receiver`` (if given) overrides the env's default Receiver."""
    import gymnasium as gym

    import bpa_gym  # noqa: F401  (registers envs)

    kwargs: dict = {}
    receiver = getattr(args, "receiver", None)
    if receiver is not None:
        kwargs["receiver"] = receiver
        rk = {}
        local = not receiver.startswith("openai:")  # batch size and device belong to local models
        if getattr(args, "max_new_tokens", None):
            rk["max_new_tokens"] = args.max_new_tokens
        if getattr(args, "batch_size", None) and local:
            rk["batch_size"] = args.batch_size
        if getattr(args, "device", None):
            if not local:
                from bpa_gym.errors import ConfigError

                raise ConfigError("--device applies to local Receivers; a server Receiver runs where the server does")
            rk["device"] = args.device
        if rk:
            kwargs["receiver_kwargs"] = rk
    if getattr(args, "data_dir", None):
        kwargs["data_dir"] = args.data_dir
    if getattr(args, "split", None):
        kwargs["split"] = args.split
    if getattr(args, "subset_size", None):
        kwargs["subset_size"] = args.subset_size
    return gym.make(args.env, **kwargs).unwrapped


def _cmd_signals(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import bpa_gym  # noqa: F401  (registers envs)
    from bpa_gym.envs.llm import BayesPersuasionLLMEnv, default_signal_library

    spec = gym.spec(args.env)
    if spec.entry_point == f"{BayesPersuasionLLMEnv.__module__}:{BayesPersuasionLLMEnv.__name__}":
        # An LLM env's library follows from its spec alone: no data or model needed.
        if spec.kwargs.get("signals", "discrete") != "discrete":
            print("this env takes free-text signals")
            return 0
        library = spec.kwargs.get("signal_library") or default_signal_library(spec.kwargs.get("task", "gsm8k"))
    else:
        # Other envs (Identity, tabular) build cheaply, with their own model-free Receivers.
        kwargs: dict = {"data_dir": args.data_dir} if args.data_dir else {}
        env = gym.make(args.env, **kwargs).unwrapped
        library = getattr(env, "signal_library", None)
        if library is None:
            print("this env takes free-text signals" if getattr(env, "num_signals", 1) is None
                  else f"this env's actions are not a text signal library: {env.action_space}")
            return 0
    for i, s in enumerate(library):
        print(f"{i:3d}  {s or '(no signal)'}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from bpa_gym.errors import ConfigError
    from bpa_gym.stats import wilson_interval

    env = _make_env(args)
    if args.signal_text is not None:
        signal = args.signal_text
        label = "custom text"
    else:
        if env.signal_library is None:
            raise ConfigError("this env takes free-text signals: pass --signal-text TEXT instead of --signal")
        key = args.signal
        if key in ("none", ""):
            signal, label = "", "no signal"
        else:
            try:
                index = int(key)
            except ValueError:
                raise ConfigError(f"--signal must be an index 0..{len(env.signal_library) - 1} or 'none', got {key!r}") from None
            signal, label = env.signal_library[index], f"signal {index}"
    n = min(args.n, len(env.items))
    if args.n > len(env.items):
        print(f"note: the split has only {len(env.items)} items; evaluating all of them", file=sys.stderr)
    items = env.items[:n]
    outcomes = []
    start = time.perf_counter()
    with tqdm(total=n, desc=f"eval {label}", unit="item", file=sys.stderr) as bar:
        for lo in range(0, n, args.batch_size):
            chunk = items[lo : lo + args.batch_size]
            outcomes += env.game.play(chunk, [signal] * len(chunk))
            bar.update(len(chunk))
            bar.set_postfix(acc=f"{sum(o.correct for o in outcomes) / len(outcomes):.3f}")
    elapsed = time.perf_counter() - start
    correct = sum(o.correct for o in outcomes)
    parsed = sum(o.status == "ok" for o in outcomes)
    lo_ci, hi_ci = wilson_interval(correct, n)
    result = {
        "env": args.env,
        "receiver": env.receiver.name,
        "signal": signal,
        "signal_label": label,
        "n": n,
        "correct": correct,
        "accuracy": correct / n,
        "ci95": [lo_ci, hi_ci],
        "parse_rate": parsed / n,
        "seconds_per_item": elapsed / n,
        "completion_tokens_mean": _mean([o.completion_tokens for o in outcomes]),
    }
    print(f"env        {args.env}")
    print(f"receiver   {result['receiver']}")
    print(f"signal     {label}: {signal or '(none)'}")
    print(f"accuracy   {result['accuracy']:.3f}  ({correct}/{n}, 95% Wilson CI [{lo_ci:.3f}, {hi_ci:.3f}])")
    print(f"parsed     {result['parse_rate']:.3f}  (answers the scorer could read)")
    print(f"speed      {result['seconds_per_item']:.2f} s/item")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _cmd_oracle_table(args: argparse.Namespace) -> int:
    from bpa_gym.oracle_table import build_oracle_table

    env = _make_env(args)
    table = build_oracle_table(env, batch_size=args.batch_size, progress=True)
    table.save(args.out)
    summary = table.summary()
    print(f"wrote {args.out}: {summary['n_items']} items x {len(table.signals)} signals ({summary['receiver']})")
    for i, mean in enumerate(summary["mean_reward_per_signal"]):
        print(f"  signal {i:2d}  mean reward {mean:.3f}")
    print(f"best fixed signal {summary['best_fixed_signal']} ({summary['best_fixed_mean']:.3f}); "
          f"per-item best {summary['per_item_best_mean']:.3f}")
    return 0


def _cmd_plot_regret(args: argparse.Namespace) -> int:
    from bpa_gym.plotting import plot_regret

    out = plot_regret(args.logdirs, args.out, loglog=args.loglog)
    print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bpa-gym", description="Bayesian Persuasion Alignment gym.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("envs", help="list the registered environments")
    s.set_defaults(fn=_cmd_envs)

    s = sub.add_parser("signals", help="print an env's signal library")
    s.add_argument("--env", default="BayesPersuasion-GSM8K-v0")
    s.add_argument("--data-dir", help="folder holding gsm8k/ (default: $BPA_DATA_DIR, then the HF hub)")
    s.set_defaults(fn=_cmd_signals)

    s = sub.add_parser("eval", help="evaluate a fixed signal on the first N items of a split")
    s.add_argument("--env", default="BayesPersuasion-GSM8K-v0", help="environment id (see `bpa-gym envs`)")
    s.add_argument("--receiver", default=None,
                   help="'smollm2' (the GSM8K env's offline default), 'hf:<id-or-path>' or 'openai:<model>@<base_url>'")
    s.add_argument("--signal", default="none", help="signal index in the env's library, or 'none' (default)")
    s.add_argument("--signal-text", default=None, help="a free-text signal instead of --signal")
    s.add_argument("--n", type=int, default=20, help="number of items (the first N of the split)")
    s.add_argument("--split", default=None, help="dataset split (default: the env's, 'test')")
    s.add_argument("--data-dir", default=None, help="folder holding gsm8k/ (default: $BPA_DATA_DIR, then the HF hub)")
    s.add_argument("--batch-size", type=int, default=8, help="prompts per Receiver batch call")
    s.add_argument("--max-new-tokens", type=int, default=None, help="Receiver generation budget")
    s.add_argument("--device", default=None, help="Receiver device for local models (default: CUDA when present)")
    s.add_argument("--json", default=None, help="also write the result as JSON to this path")
    s.set_defaults(fn=_cmd_eval)

    s = sub.add_parser("oracle-table", help="tabulate every signal on every item (for RegretWrapper on LLM envs)")
    s.add_argument("--env", default="BayesPersuasion-GSM8K-v0")
    s.add_argument("--receiver", default=None, help="Receiver spec (default: the env's, 'smollm2' for GSM8K); greedy")
    s.add_argument("--data-dir", default=None)
    s.add_argument("--split", default=None)
    s.add_argument("--subset-size", type=int, default=None, help="use the first N items of the split")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--max-new-tokens", type=int, default=None)
    s.add_argument("--device", default=None)
    s.add_argument("--out", required=True, help="output .npz path")
    s.set_defaults(fn=_cmd_oracle_table)

    s = sub.add_parser("plot-regret", help="plot cumulative regret vs. the bound from TensorBoard logs")
    s.add_argument("logdirs", nargs="+", help="RegretWrapper log dirs (one per seed, or parents of seed dirs)")
    s.add_argument("--out", default="regret.png", help="output PNG path")
    s.add_argument("--loglog", action="store_true", help="log-log axes")
    s.set_defaults(fn=_cmd_plot_regret)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "n", 1) is not None and getattr(args, "n", 1) < 1:
        print("bpa-gym: error: --n must be >= 1", file=sys.stderr)
        return 2
    from bpa_gym.errors import BPAError

    env_id = getattr(args, "env", None)
    if env_id is not None:
        import importlib

        import gymnasium as gym

        import bpa_gym

        if ":" in env_id:  # "module:EnvId", as gym.make accepts: import the module, keep the id
            module, env_id = env_id.split(":", 1)
            try:
                importlib.import_module(module)
            except ImportError as exc:
                print(f"bpa-gym: error: cannot import {module!r} for env {args.env!r}: {exc}", file=sys.stderr)
                return 2
            args.env = env_id
        if env_id not in gym.registry:
            print(f"bpa-gym: error: unknown env {env_id!r}; choose one of {bpa_gym.env_ids()} "
                  "(`bpa-gym envs` lists them)", file=sys.stderr)
            return 2
    try:
        return args.fn(args)
    except BPAError as exc:
        print(f"bpa-gym: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
