"""The paper's Q1 table for SmolLM2: no signal vs. the prior vs. an Advisor trained here, on two Receivers.

What it does, per task (GSM8K, then HumanEval):

1. **Train an Advisor** for a stated budget: batched UCB1 over the env's
   discrete signal library (index 0 = silence), ``--train-plays`` plays
   against the **in-process** SmolLM2 Receiver (transformers), through the
   env's public batch path (:class:`bpa_gym.envs.llm_vector.BatchPlayer`).
   GSM8K trains on **train**-split items; HumanEval has only a test split, so
   it trains on test items *after* the first ``--n-humaneval`` (disjoint from
   the evaluated ones).  The best arm (empirical mean; ties: more plays, then
   lower index) is exported as a discrete-signal policy file
   (``bpa-gym-discrete-advisor/v1``, one fixed index).
2. **Evaluate** with :func:`bpa_gym.evaluation.evaluate` (the ``bpa-gym
   evaluate`` protocol): conditions ``none`` / ``prior`` (uniform over the
   library) / ``trained`` on the first N test items, for two Receivers: the
   in-process SmolLM2 and the same model served by vLLM
   (:class:`bpa_gym.serving.VLLMServer`, one server start for both tasks).
   The Advisor is trained against the in-process Receiver only and evaluated on
   both (the paper's model-agnostic protocol, here with the same weights on
   two engines).
3. Print one Markdown table (accuracy / pass@1 with 95% Wilson intervals, lift
   over ``none`` with the exact McNemar test on the same items) and write
   ``table.md``, ``results.json`` (sizes, times, max_new_tokens, seeds, the
   training budget, every arm's plays and mean, the trained policy) and the
   policy files under ``--out`` (default ``runs/paper_table/``).

Every Receiver call goes through the response cache (``--cache auto``: the
default database, see :mod:`bpa_gym.response_cache`), training plays included,
and the vLLM server listens on a fixed port (``--vllm-port``; the port is part
of the ``openai:`` Receiver's identity), so a rerun with the same arguments
asks no Receiver anything and takes seconds plus the server's start (measured: 63 s,
54 of them vLLM's start, against 749 s cold).

SmolLM2-135M is a weak Receiver (a few % on GSM8K, near 0 pass@1 on
HumanEval) and the subsets are small: read the intervals, not the point
estimates.

Usage (here, CPU, 2 shared cores; the run reported for issue 10: 12.5 minutes cold)::

    export BPA_VLLM_PYTHON=/opt/vllm-venv/bin/python
    python benchmarks/paper_table.py --n-gsm8k 24 --train-plays 64 --n-humaneval 10 \
        --humaneval-train-plays 24 --max-new-tokens 128 --humaneval-max-new-tokens 192
    python benchmarks/paper_table.py --quick --no-vllm      # tiny sizes: checks the pipeline, not a result

Full scale (GPUs; the paper's setting)
--------------------------------------
Serve each Receiver with vLLM (one server per model, e.g. one GPU each), then
train a real text Advisor and evaluate every Receiver on the full test sets::

    python3 -m venv ~/.venvs/vllm && ~/.venvs/vllm/bin/pip install vllm
    export BPA_VLLM_PYTHON=~/.venvs/vllm/bin/python
    CUDA_VISIBLE_DEVICES=0 bpa-gym serve vllm --model HuggingFaceTB/SmolLM2-1.7B-Instruct --port 8001 &
    CUDA_VISIBLE_DEVICES=1 bpa-gym serve vllm --model microsoft/phi-2 --port 8002 &
    R1=openai:HuggingFaceTB/SmolLM2-1.7B-Instruct@http://127.0.0.1:8001/v1
    R2=openai:microsoft/phi-2@http://127.0.0.1:8002/v1
    # a text Advisor trained against R1 on the *train* split (PPO, or GRPO with TRL)
    python agents/ppo_text.py --receiver $R1 --policy gpt2 --device cuda --num-iterations 300 \
        --save-dir runs/ppo_gsm8k
    python agents/trl_grpo.py --receiver $R1 --policy gpt2 --total-steps 1000 --output-dir runs/grpo_gsm8k
    # the Q1 table on all 1319 GSM8K test items, the Advisor evaluated on every Receiver
    bpa-gym evaluate --env BayesPersuasion-GSM8K-v0 --signals text --advisor-tokenizer gpt2 \
        --receiver $R1 --receiver $R2 --advisor runs/ppo_gsm8k --advisor runs/grpo_gsm8k/final \
        --n 1319 --max-new-tokens 512 --out out/q1_gsm8k
    # and on all 164 HumanEval problems (Advisors trained with --env-id BayesPersuasion-HumanEval-v0)
    bpa-gym evaluate --env BayesPersuasion-HumanEval-v0 --signals text --advisor-tokenizer gpt2 \
        --receiver $R1 --receiver $R2 --advisor runs/ppo_humaneval --n 164 --max-new-tokens 512 \
        --out out/q1_humaneval

HumanEval has only a test split (164 problems): an Advisor trained on it has
seen the evaluated problems; say so, or train on another code set.  All
answers go through the response cache, so a killed or repeated run only
pays for what was never answered.  (check each agent's ``--help`` for its exact flags; this script is the
same pipeline at toy scale with a discrete bandit Advisor.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

DEFAULT_OUT = Path("runs/paper_table")
TRAINED = "trained"
DEFAULTS = dict(n_gsm8k=12, n_humaneval=6, train_plays=30, max_new_tokens=128, humaneval_max_new_tokens=192)
QUICK = dict(n_gsm8k=4, n_humaneval=2, train_plays=8, max_new_tokens=32, humaneval_max_new_tokens=48)


@dataclass
class TaskSetup:
    """One row group of the table: an env, its splits, the evaluated and training budgets."""

    name: str
    env_id: str
    n: int
    train_plays: int
    max_new_tokens: int
    train_split: str | None  # None: train on the eval split's items after the first n
    eval_split: str = "test"
    env_kwargs: dict[str, Any] = field(default_factory=dict)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-gsm8k", type=int, default=None, help="GSM8K test items evaluated (the first N; default 12)")
    p.add_argument("--n-humaneval", type=int, default=None, help="HumanEval problems evaluated (the first N; default 6)")
    p.add_argument("--train-plays", type=int, default=None, help="bandit plays on GSM8K train items (default 30)")
    p.add_argument("--humaneval-train-plays", type=int, default=None,
                   help="bandit plays on HumanEval (items after the first --n-humaneval); default --train-plays; "
                        "0: no trained row for HumanEval")
    p.add_argument("--max-new-tokens", type=int, default=None, help="Receiver answer length on GSM8K (default 128)")
    p.add_argument("--humaneval-max-new-tokens", type=int, default=None,
                   help="Receiver answer length on HumanEval (default 192)")
    p.add_argument("--seed", type=int, default=0, help="seeds the prior's draws, the training items and UCB ties")
    p.add_argument("--ucb-c", type=float, default=1.0, help="UCB1 exploration multiplier")
    p.add_argument("--batch-size", type=int, default=16, help="items per Receiver call")
    p.add_argument("--no-vllm", action="store_true", help="in-process Receiver only (no vLLM server)")
    p.add_argument("--vllm-port", type=int, default=18731, help="fixed port: it is part of the cache key")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes (4 GSM8K, 2 HumanEval items, 8 plays, 32/48 tokens): checks the pipeline")
    p.add_argument("--data-dir", default=os.environ.get("BPA_DATA_DIR", "../shared/data"))
    p.add_argument("--cache", default="auto", help="response cache: auto, off or a database path")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--receiver", default="smollm2",
                   help="the in-process Receiver spec ('default': each env's own, e.g. the Identity env's)")
    p.add_argument("--gsm8k-env", default="BayesPersuasion-GSM8K-v0", help=argparse.SUPPRESS)
    p.add_argument("--humaneval-env", default="BayesPersuasion-HumanEval-v0", help=argparse.SUPPRESS)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    a = p.parse_args(argv)
    sizes = QUICK if a.quick else DEFAULTS
    for name, value in sizes.items():  # flags given explicitly win over --quick
        if getattr(a, name) is None:
            setattr(a, name, value)
    if a.humaneval_train_plays is None:
        a.humaneval_train_plays = a.train_plays
    for name in ("n_gsm8k", "n_humaneval", "max_new_tokens", "humaneval_max_new_tokens", "batch_size"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}")
    for name in ("train_plays", "humaneval_train_plays", "seed"):
        if getattr(a, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(a, name)}")
    if not math.isfinite(a.ucb_c) or a.ucb_c < 0:
        p.error(f"--ucb-c must be a finite number >= 0, got {a.ucb_c}")
    return a


def _cache_option(text: str) -> Any:
    return {"auto": "auto", "off": False}.get(text.strip().lower(), text)


def _env_kwargs(env_id: str, data_dir: str | None) -> dict[str, Any]:
    return {"data_dir": data_dir} if data_dir and "Identity" not in env_id else {}


def make_in_process_receiver(spec: str, max_new_tokens: int, cache: Any) -> Any:
    """The in-process Receiver (``None`` for an env's own), wrapped in the response cache."""
    if spec.strip().lower() == "default":
        return None
    from bpa_gym.receivers import make_receiver
    from bpa_gym.receivers.caching import with_response_cache

    return with_response_cache(make_receiver(spec, max_new_tokens=max_new_tokens), cache)


def _ucb_pick(counts: np.ndarray, sums: np.ndarray, pending: np.ndarray, c: float, rng: np.random.Generator) -> int:
    """UCB1 index with this batch's pending picks counted as plays (so a batch spreads over untried arms)."""
    n = counts + pending
    untried = np.flatnonzero(n == 0)
    if untried.size:
        return int(untried[0])
    index = sums / n + c * np.sqrt(2.0 * math.log(n.sum()) / n)
    return int(rng.choice(np.flatnonzero(index == index.max())))


def train_bandit(task: TaskSetup, receiver: Any, *, plays: int, seed: int, c: float, batch_size: int,
                 progress: bool) -> dict[str, Any]:
    """Batched UCB1 over the signal library against ``receiver``; returns counts, means and the best arm."""
    import gymnasium as gym

    import bpa_gym  # noqa: F401  (registers the envs)
    from bpa_gym.envs.llm_vector import BatchPlayer

    kwargs = dict(task.env_kwargs)
    if receiver is not None:
        kwargs["receiver"] = receiver
    split = task.train_split or task.eval_split
    env = gym.make(task.env_id, split=split, **kwargs).unwrapped
    try:
        library = list(env.signal_library)
        pool = list(env.items) if task.train_split else list(env.items[task.n:])
        if plays and not pool:
            raise SystemExit(f"{task.name}: no training items (the split has {len(env.items)} items, "
                             f"{task.n} evaluated)")
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(pool)) if pool else np.zeros(0, int)
        k = len(library)
        counts, sums = np.zeros(k), np.zeros(k)
        history: list[dict[str, Any]] = []
        play = BatchPlayer(env)
        t0 = time.perf_counter()
        from tqdm.auto import tqdm

        with tqdm(total=plays, desc=f"train {task.name}", unit="play", file=sys.stderr, disable=not progress) as bar:
            done = 0
            while done < plays:
                b = min(batch_size, plays - done)
                items = [pool[int(order[(done + j) % len(pool)])] for j in range(b)]
                pending = np.zeros(k)
                actions = []
                for _ in range(b):
                    arm = _ucb_pick(counts, sums, pending, c, rng)
                    pending[arm] += 1
                    actions.append(arm)
                outcomes = play(items, actions)
                for it, arm, o in zip(items, actions, outcomes):
                    counts[arm] += 1
                    sums[arm] += float(o.reward)
                    history.append({"item": it.id, "arm": int(arm), "reward": float(o.reward), "status": o.status})
                done += b
                bar.update(b)
        means = sums / np.maximum(counts, 1)
        # best: highest empirical mean among played arms; ties -> more plays, then the lower index
        best = min((a for a in range(k) if counts[a] > 0), key=lambda a: (-means[a], -counts[a], a), default=0)
        return {"algorithm": f"batched UCB1 (c={c}), best empirical mean exported as a fixed signal index",
                "receiver": getattr(receiver, "name", "default"), "split": split,
                "items": "train split" if task.train_split else f"eval split items after the first {task.n}",
                "plays": int(plays), "unique_items": len({h["item"] for h in history}), "seed": seed,
                "counts": counts.astype(int).tolist(), "means": [round(float(m), 4) for m in means],
                "best_index": int(best), "best_signal": library[best], "best_mean": float(means[best]),
                "time_s": round(time.perf_counter() - t0, 1), "library": library, "history": history}
    finally:
        env.close()


def write_policy(path: Path, library: list[str], index: int) -> Path:
    """A ``bpa-gym-discrete-advisor/v1`` file: one library index for every item."""
    from bpa_gym.advisors import DISCRETE_POLICY_FORMAT
    from bpa_gym.common.files import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as fh:
        json.dump({"format": DISCRETE_POLICY_FORMAT, "signal_library": library, "signal_index": int(index)}, fh,
                  indent=2)
    return path


def _tasks(a: argparse.Namespace) -> list[TaskSetup]:
    return [
        TaskSetup("gsm8k", a.gsm8k_env, a.n_gsm8k, a.train_plays, a.max_new_tokens, "train",
                  env_kwargs=_env_kwargs(a.gsm8k_env, a.data_dir)),
        TaskSetup("humaneval", a.humaneval_env, a.n_humaneval, a.humaneval_train_plays, a.humaneval_max_new_tokens,
                  None, env_kwargs=_env_kwargs(a.humaneval_env, a.data_dir)),
    ]


def _fmt_row(task: str, metric: str, receiver: str, condition: str, cell: Any) -> str:
    lift = "—" if cell.lift is None else f"{cell.lift:+.3f}"
    disc = "—" if cell.discordant is None else f"{cell.discordant[0]}/{cell.discordant[1]}"
    p = "—" if cell.p_value is None else f"{cell.p_value:.3g}"
    return (f"| {task} | {metric} | {receiver} | {condition} | {cell.accuracy:.3f} ({cell.correct}/{cell.n}) | "
            f"[{cell.ci95[0]:.3f}, {cell.ci95[1]:.3f}] | {cell.parse_rate:.2f} | {lift} | {disc} | {p} |")


TABLE_HEAD = ("| Task | Metric | Receiver | Condition | Score (k/n) | 95% Wilson CI | parsed | lift vs none | "
              "discordant (+/-) | McNemar p |\n|---|---|---|---|---:|---|---:|---:|---:|---:|")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; print the table and return ``results.json``'s content."""
    a = parse_args(argv)
    from bpa_gym.evaluation import evaluate

    t_start = time.perf_counter()
    cache = _cache_option(a.cache)
    out: Path = a.out
    out.mkdir(parents=True, exist_ok=True)
    progress = not a.no_progress
    tasks = _tasks(a)
    server = None
    times: dict[str, float] = {}
    results: dict[str, Any] = {
        "config": {"n": {t.name: t.n for t in tasks}, "train_plays": {t.name: t.train_plays for t in tasks},
                   "max_new_tokens": {t.name: t.max_new_tokens for t in tasks},
                   "envs": {t.name: t.env_id for t in tasks}, "seed": a.seed, "ucb_c": a.ucb_c,
                   "batch_size": a.batch_size, "quick": a.quick, "vllm": not a.no_vllm, "cache": a.cache,
                   "in_process_receiver": a.receiver, "decoding": "greedy (temperature 0)",
                   "data_dir": a.data_dir},
        "training": {}, "policies": {}, "evaluations": {}, "receiver_labels": {}, "times_s": times,
    }
    rows: list[str] = []
    try:
        if not a.no_vllm:
            from bpa_gym.serving import VLLMServer

            t0 = time.perf_counter()
            server = VLLMServer("smollm2", max_num_seqs=16, port=a.vllm_port,
                                max_model_len=2048).start()
            times["vllm_server_start"] = round(time.perf_counter() - t0, 1)
        for task in tasks:
            t0 = time.perf_counter()
            local = make_in_process_receiver(a.receiver, task.max_new_tokens, cache)
            times[f"{task.name}_load_receiver"] = round(time.perf_counter() - t0, 1)
            advisors: list[str] = []
            if task.train_plays > 0:
                t0 = time.perf_counter()
                trained = train_bandit(task, local, plays=task.train_plays, seed=a.seed, c=a.ucb_c,
                                       batch_size=a.batch_size, progress=progress)
                times[f"{task.name}_train"] = round(time.perf_counter() - t0, 1)
                policy = write_policy(out / f"{task.name}_policy.json", trained.pop("library"), trained["best_index"])
                _write_json(out / f"{task.name}_training_history.json", trained.pop("history"))
                results["training"][task.name] = trained
                results["policies"][task.name] = {"path": str(policy), **json.loads(policy.read_text())}
                advisors.append(str(policy))
            receivers: list[Any] = [local]
            labels = {_label(local): ("the env's own Receiver" if local is None else
                                      f"{a.receiver} in-process (transformers)")}
            if server is not None:
                receivers.append(server.receiver_spec)
                labels[server.receiver_spec] = "smollm2 via vLLM (openai:)"
            results["receiver_labels"][task.name] = labels
            t0 = time.perf_counter()
            ev = evaluate(task.env_id, receivers, advisors, n=task.n, split=task.eval_split, seed=a.seed,
                          cache=cache, receiver_kwargs={"max_new_tokens": task.max_new_tokens},
                          env_kwargs=task.env_kwargs, batch_size=a.batch_size, out_dir=out / task.name,
                          progress=progress)
            times[f"{task.name}_evaluate"] = round(time.perf_counter() - t0, 1)
            names = {c: (TRAINED if c in advisors else c) for c in (d["name"] for d in ev.conditions)}
            for cell in ev.cells:
                rows.append(_fmt_row(f"{task.name} ({ev.split}, n={len(ev.item_ids)})", ev.metric,
                                     labels.get(cell.receiver, cell.receiver), names[cell.condition], cell))
            data = ev.to_dict()
            data["condition_names"] = names
            results["evaluations"][task.name] = data
            close = getattr(local, "close", None)
            if callable(close):
                close()
    finally:
        if server is not None:
            server.stop()
    times["total"] = round(time.perf_counter() - t_start, 1)
    table = TABLE_HEAD + "\n" + "\n".join(rows) + "\n"
    notes = _notes(results, tasks)
    results["table_md"] = table
    (out / "table.md").write_text(table + "\n" + notes + "\n", encoding="utf-8")
    _write_json(out / "results.json", results)
    print(table)
    print(notes)
    print(f"wrote {out / 'table.md'} and {out / 'results.json'}")
    return results


def _label(receiver: Any) -> str:
    return "default" if receiver is None else str(getattr(receiver, "name", type(receiver).__name__))


def _notes(results: dict[str, Any], tasks: list[TaskSetup]) -> str:
    lines = []
    for t in tasks:
        tr = results["training"].get(t.name)
        if tr is None:
            lines.append(f"- {t.name}: no trained Advisor (budget 0 plays); none/prior only.")
            continue
        lines.append(f"- {t.name}: trained = {tr['algorithm']}; {tr['plays']} plays ({tr['unique_items']} items, "
                     f"{tr['items']}) against {tr['receiver']} at max_new_tokens {t.max_new_tokens}; plays per "
                     f"arm {tr['counts']}; best arm {tr['best_index']} (mean {tr['best_mean']:.3f}): "
                     f"{tr['best_signal'] or '(silence)'!r}.")
    times = results["times_s"]
    lines.append("- times (s): " + ", ".join(f"{k} {v}" for k, v in times.items()))
    lines.append("- greedy decoding; every answer through the response cache (a rerun asks no Receiver again).")
    return "\n".join(lines)


def _write_json(path: Path, data: Any) -> None:
    from bpa_gym.common.files import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as fh:
        fh.write(json.dumps(data, indent=2, default=str))


if __name__ == "__main__":
    main()
