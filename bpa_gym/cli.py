"""The ``bpa-gym`` command line.

Commands:
    envs          list the registered environments
    signals       print an env's signal library with indices
    eval          evaluate a fixed signal on the first N items (batched), with a 95% Wilson interval
    evaluate      the paper's Q1 table: no signal / prior / trained Advisors x several Receivers, paired tests
    oracle-table  play every signal on every item once (greedy) and save the table for regret
    plot-regret   plot cumulative regret vs. the bound from TensorBoard logs (PNG)
    cache         response cache: ``stats`` or ``clear``
    serve         start a Receiver engine (``serve vllm --model smollm2``) and print its Receiver spec
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Sequence


class _Parser(argparse.ArgumentParser):
    """argparse with bpa-gym's one error style: the usage line, then ``bpa-gym: error: ...``, exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"bpa-gym: error: {message}\n")


def _integer_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type=``: an integer >= ``minimum`` (the wording of :mod:`bpa_gym.common.validation`)."""
    expected = f"an integer >= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {expected}, got {value}")
        return value

    parse.__name__ = expected  # argparse names the type in some messages
    return parse


_positive_int = _integer_at_least(1)


def _signal_choice(text: str) -> int | None:
    """``--signal``: ``none`` (no signal; ``None``) or a signal index >= 0."""
    key = text.strip().lower()
    if key in ("none", ""):
        return None
    try:
        value = int(key, 10)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a signal index >= 0 (see `bpa-gym signals`) or 'none', "
                                         f"got {text!r}")
    return value


def _output_path(text: str) -> Path:
    """An output file path: checked before the (possibly long) run, not after it."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must be a file path, got an empty string")
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory; give a file path")
    return path


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
    elif args.signal is None:
        signal, label = "", "no signal"
    else:
        if env.signal_library is None:
            raise ConfigError("this env takes free-text signals: pass --signal-text TEXT instead of --signal")
        signal, label = env.signal_library[args.signal], f"signal {args.signal}"  # ConfigError when out of range
    n = min(args.n, len(env.items))
    if args.n > len(env.items):
        print(f"note: the split has only {len(env.items)} items; evaluating all of them", file=sys.stderr)
    items = env.items[:n]
    from bpa_gym.envs.llm_vector import BatchPlayer

    play = BatchPlayer(env, "text")  # the env's vector env, one Receiver batch per chunk; a failure raises
    outcomes = []
    start = time.perf_counter()
    with tqdm(total=n, desc=f"eval {label}", unit="item", file=sys.stderr) as bar:
        for lo in range(0, n, args.batch_size):
            chunk = items[lo : lo + args.batch_size]
            outcomes += play(chunk, [signal] * len(chunk))  # never a silent 0
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
        from bpa_gym.common.files import atomic_write

        with atomic_write(args.json, "w") as fh:
            fh.write(json.dumps(result, indent=2))
    return 0


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _output_dir(text: str) -> Path:
    """An output folder: checked before the (possibly long) run, not after it."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must be a folder path, got an empty string")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file; give a folder path")
    return path


def _cache_option(text: str):
    """``--cache``: ``auto`` (the default database, greedy Receivers with an identity), ``off``, or a database path."""
    key = text.strip()
    if not key:
        raise argparse.ArgumentTypeError("must be 'auto', 'off' or a database file path, got an empty string")
    if key.lower() == "auto":
        return "auto"
    if key.lower() in ("off", "none", "false", "no"):
        return False
    if Path(key).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory; give a database file path (e.g. cache.sqlite)")
    return key


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from bpa_gym.common.files import atomic_write
    from bpa_gym.errors import ConfigError
    from bpa_gym.evaluation import evaluate

    def receiver_kwargs(spec: str) -> dict:
        local = not spec.strip().lower().startswith("openai:")  # batch size and device belong to local models
        rk: dict = {}
        if args.max_new_tokens:
            rk["max_new_tokens"] = args.max_new_tokens
        if local and args.receiver_batch_size:
            rk["batch_size"] = args.receiver_batch_size
        if args.device:
            if not local:
                raise ConfigError(f"--device applies to local Receivers; {spec!r} runs where its server does")
            rk["device"] = args.device
        return rk

    options = {k: v for k, v in dict(tokenizer=args.advisor_tokenizer, prior_lm=args.prior_lm,
                                      template=args.advisor_template, max_new_tokens=args.advisor_max_new_tokens,
                                      temperature=args.advisor_temperature, device=args.advisor_device,
                                      seed=args.seed).items() if v is not None}
    ev = evaluate(args.env, args.receiver, args.advisor or (), n=args.n, split=args.split, data_dir=args.data_dir,
                  signals=args.signals, seed=args.seed, cache=args.cache, receiver_kwargs_for=receiver_kwargs,
                  advisor_options=options, batch_size=args.batch_size, out_dir=args.out, progress=True)
    table = ev.to_markdown()
    n = len(ev.item_ids)
    print(f"{ev.env_id} ({ev.split}, first {n} items); {ev.metric} with 95% Wilson intervals; lift vs no signal "
          "with the exact McNemar test on the same items (discordant: items gained / lost)\n")
    print(table, end="")
    for cond in ev.conditions:
        print(f"  {cond['name']}: {cond['description']}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        with atomic_write(args.out / "table.md", "w") as fh:
            fh.write(table)
        with atomic_write(args.out / "results.json", "w") as fh:
            fh.write(json.dumps(ev.to_dict(), indent=2))
        print(f"wrote {args.out / 'table.md'} and {args.out / 'results.json'}")
    return 0


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


def _cmd_cache(args: argparse.Namespace) -> int:
    from bpa_gym.response_cache import ResponseCache

    cache = ResponseCache(args.path)
    if args.action == "clear":
        n = cache.clear()
        print(f"cleared {n} cached responses from {cache.path}")
        return 0
    stats = cache.stats()
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(f"{stats['path']}: {stats['entries']} responses, {stats['bytes'] / 1e6:.1f} MB")
    for row in stats["receivers"]:
        ident = row["receiver"]
        gen = ident.get("generation", {})
        print(f"  {row['entries']:>8}  saved {row['saved_receiver_s']:>9.1f} s  {ident.get('class')} "
              f"{ident.get('model', ident.get('name'))}  max_new_tokens={gen.get('max_new_tokens')} "
              f"temperature={gen.get('temperature')}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import signal as _signal
    import threading

    from bpa_gym.serving import VLLMServer

    server = VLLMServer(args.model, served_model_name=args.served_model_name, host=args.host, port=args.port,
                        dtype=args.dtype, max_num_seqs=args.max_num_seqs, max_model_len=args.max_model_len,
                        python=args.python, log_path=args.log)
    print(f"starting vLLM for {server.model_path} on {server.base_url} (python {server.python}) ...", flush=True)
    t0 = time.perf_counter()
    server.start()
    print(f"ready in {time.perf_counter() - t0:.0f} s. Receiver spec:\n  {server.receiver_spec}\n"
          f"e.g. gym.make('BayesPersuasion-GSM8K-v0', receiver={server.receiver_spec!r}, "
          f"receiver_kwargs={{'max_concurrency': {server.max_num_seqs}}})\nCtrl-C stops it.", flush=True)
    stop = threading.Event()
    for sig in (_signal.SIGINT, _signal.SIGTERM):
        _signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.is_set() and server.running:
            stop.wait(1.0)
    finally:
        server.stop()
    if not stop.is_set():
        print(f"bpa-gym: error: the vLLM server exited; its log ends:\n{server.log_tail()}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bpa-gym", description="Bayesian Persuasion Alignment gym.")
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
    which = s.add_mutually_exclusive_group()
    which.add_argument("--signal", type=_signal_choice, default=None,
                       help="signal index in the env's library, or 'none' (default)")
    which.add_argument("--signal-text", default=None, help="a free-text signal instead of --signal")
    s.add_argument("--n", type=_positive_int, default=20, help="number of items (the first N of the split)")
    s.add_argument("--split", default=None, help="dataset split (default: the env's, 'test')")
    s.add_argument("--data-dir", default=None, help="folder holding gsm8k/ (default: $BPA_DATA_DIR, then the HF hub)")
    s.add_argument("--batch-size", type=_positive_int, default=8, help="prompts per Receiver batch call")
    s.add_argument("--max-new-tokens", type=_positive_int, default=None, help="Receiver generation budget")
    s.add_argument("--device", default=None, help="Receiver device for local models (default: CUDA when present)")
    s.add_argument("--json", type=_output_path, default=None, help="also write the result as JSON to this path")
    s.set_defaults(fn=_cmd_eval)

    s = sub.add_parser("evaluate", help="the paper's Q1 table: no signal / prior / Advisors across Receivers")
    s.add_argument("--env", default="BayesPersuasion-GSM8K-v0", help="environment id (see `bpa-gym envs`)")
    s.add_argument("--receiver", action="append", default=None,
                   help="a Receiver spec ('smollm2', 'hf:<id-or-path>', 'openai:<model>@<base_url>'); repeat for "
                        "several Receivers (default: the env's own)")
    s.add_argument("--advisor", action="append", default=None,
                   help="a condition besides 'none' and 'prior' (always run): a ppo_text checkpoint.pt or run "
                        "folder, a Hugging Face model folder (trl_grpo), a discrete policy .json, index:K, "
                        "prior:library, prior:lm; repeatable")
    s.add_argument("--n", type=_positive_int, default=100, help="number of items (the first N of the split)")
    s.add_argument("--split", default=None, help="dataset split (default: the env's, 'test')")
    s.add_argument("--data-dir", default=None, help="dataset folder (default: $BPA_DATA_DIR, then the HF hub)")
    s.add_argument("--signals", choices=["discrete", "text"], default=None,
                   help="the env's signal mode (default: the env's); 'prior' is uniform over the library in "
                        "discrete mode, an untrained LM Advisor in text mode")
    s.add_argument("--seed", type=_integer_at_least(0), default=0, help="seed of the prior's draws and LM Advisors")
    s.add_argument("--batch-size", type=_positive_int, default=16, help="items per Receiver call")
    s.add_argument("--receiver-batch-size", type=_positive_int, default=None,
                   help="a local Receiver's generate batch size")
    s.add_argument("--max-new-tokens", type=_positive_int, default=None, help="Receiver generation budget")
    s.add_argument("--device", default=None, help="device of local Receivers (default: CUDA when present)")
    s.add_argument("--cache", type=_cache_option, default="auto",
                   help="response cache: 'auto' (default database), 'off', or a database file path")
    s.add_argument("--out", type=_output_dir, default=None,
                   help="folder for table.md, results.json and the per-cell files a rerun resumes from")
    s.add_argument("--advisor-tokenizer", default=None,
                   help="tokenizer of LM Advisors (default: the checkpoint's; required for prior:lm, e.g. "
                        "../shared/models/gpt2)")
    s.add_argument("--prior-lm", default=None,
                   help="untrained model of prior:lm: random:<config folder> (default: the tokenizer's folder) "
                        "or random:tiny")
    s.add_argument("--advisor-template", default=None, help="Advisor prompt of HF folders and prior:lm")
    s.add_argument("--advisor-max-new-tokens", type=_positive_int, default=None,
                   help="signal length of HF folders and prior:lm (a PPO checkpoint uses its own)")
    s.add_argument("--advisor-temperature", type=float, default=None, help="sampling temperature of LM Advisors")
    s.add_argument("--advisor-device", default=None, help="device of LM Advisors (default: cpu)")
    s.set_defaults(fn=_cmd_evaluate)

    s = sub.add_parser("oracle-table", help="tabulate every signal on every item (for RegretWrapper on LLM envs)")
    s.add_argument("--env", default="BayesPersuasion-GSM8K-v0")
    s.add_argument("--receiver", default=None, help="Receiver spec (default: the env's, 'smollm2' for GSM8K); greedy")
    s.add_argument("--data-dir", default=None)
    s.add_argument("--split", default=None)
    s.add_argument("--subset-size", type=_positive_int, default=None, help="use the first N items of the split")
    s.add_argument("--batch-size", type=_positive_int, default=16, help="(item, signal) pairs per Receiver call")
    s.add_argument("--max-new-tokens", type=_positive_int, default=None, help="Receiver generation budget")
    s.add_argument("--device", default=None)
    s.add_argument("--out", type=_output_path, required=True, help="output .npz path")
    s.set_defaults(fn=_cmd_oracle_table)

    s = sub.add_parser("plot-regret", help="plot cumulative regret vs. the bound from TensorBoard logs")
    s.add_argument("logdirs", nargs="+", help="RegretWrapper log dirs (one per seed, or parents of seed dirs)")
    s.add_argument("--out", type=_output_path, default=Path("regret.png"), help="output PNG path")
    s.add_argument("--loglog", action="store_true", help="log-log axes")
    s.set_defaults(fn=_cmd_plot_regret)

    s = sub.add_parser("cache", help="the response cache: stats or clear")
    s.add_argument("action", choices=["stats", "clear"])
    s.add_argument("--path", default=None,
                   help="database file (default: $BPA_RESPONSE_CACHE, else $BPA_CACHE_DIR/responses.sqlite, "
                        "else the user cache folder)")
    s.add_argument("--json", action="store_true", help="stats as JSON")
    s.set_defaults(fn=_cmd_cache)

    s = sub.add_parser("serve", help="start a Receiver engine and print its Receiver spec")
    s.add_argument("engine", choices=["vllm"], help="the serving engine (vLLM, from its own venv: BPA_VLLM_PYTHON)")
    s.add_argument("--model", default="smollm2", help="'smollm2' (offline default), a model folder or a hub id")
    s.add_argument("--served-model-name", default=None, help="name clients ask for (default: from --model)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=_positive_int, default=8000)
    s.add_argument("--dtype", default=None, help="vLLM --dtype (default: float32 on CPU, auto on GPU)")
    s.add_argument("--max-num-seqs", type=_positive_int, default=64,
                   help="sequences the engine batches at once; size the Receiver's max_concurrency to it")
    s.add_argument("--max-model-len", type=_positive_int, default=None)
    s.add_argument("--python", default=None, help="python of the vLLM venv (default: $BPA_VLLM_PYTHON)")
    s.add_argument("--log", default=None, help="write the server's log to this file")
    s.set_defaults(fn=_cmd_serve)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 with a ``bpa-gym: error:`` line for bad input)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's errors (already printed) and --help
        return exc.code if isinstance(exc.code, int) else 2
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
