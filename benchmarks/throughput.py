"""Throughput of the env and of the Receiver engines: every figure is a ratio measured side by side in one run.

Rows (choose with ``--rows``; default all):

* **a** -- env step CPU time vs a ``CartPole-v1`` step and vs a bare loop
  doing the same work without Gymnasium: GSM8K with an instant scripted
  Receiver (a fixed response; the bare loop renders, asks the same Receiver
  and scores), the tabular env in signal and scheme modes (the bare loop calls
  the game core: ``game.evaluate`` / ``game.best_response`` and the draws).
  Both ``gym.make(...)`` (with Gymnasium's PassiveEnvChecker and
  OrderEnforcing wrappers) and ``.unwrapped`` are measured.  One-step episodes:
  a step's time is (reset + step) minus reset, CPU time, rounds interleaved,
  the median ratio reported.
* **c** -- in-process HF (``SmolLM2Receiver``, one batch of ``--batch`` GSM8K
  prompts, ``--max-new-tokens``) vs a vLLM server on the same prompts
  (completion tokens per second, wall and CPU time of the process that did the
  work); and the ``openai:`` client vs a plain load generator (raw concurrent
  httpx POSTs of the same request bodies) against the same server.
* **d** -- cache replay vs live: a ``CachingReceiver`` over SmolLM2 answers the
  prompts twice; the second pass (from the cache) vs the first (generated);
  the responses are asserted identical.
* **e** -- concurrency 1 vs N (``--batch``) against the vLLM server.

* **b** -- a native vector-env rollout (``gym.make_vec(..., num_envs=N,
  vectorization_mode="vector_entry_point")``, one ``step`` of N GSM8K items
  and signals) vs the same Receiver's raw batched ``generate`` on the same
  rendered prompts (SmolLM2 in process, ``--batch`` prompts,
  ``--max-new-tokens``): wall-time throughput ratio (goal >= 0.95), rounds
  interleaved, the responses asserted identical.

Rows c and e need vLLM in its own venv (``$BPA_VLLM_PYTHON``, see
:mod:`bpa_gym.serving`); the server is started once per run.  Results are
printed as a table and written as JSON (``--out``, default
``runs/throughput/results.json``).

Usage::

    python benchmarks/throughput.py                    # everything
    python benchmarks/throughput.py --rows a --quick   # env overhead only, small
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import bpa_gym  # noqa: E402,F401  (registers the envs)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"

#: The instant Receiver's fixed answer: a short GSM8K-style solution ending in an explicit answer.
INSTANT_RESPONSE = ("Janet's ducks lay 16 eggs a day. She eats 3 and bakes 4, so 16 - 3 - 4 = 9 eggs are left. "
                    "She sells them at $2 each: 9 * 2 = $18.\nThe answer is 18.")


# ----------------------------------------------------------------------------------------------- helpers

def cpu_per_call(fn: Callable[[], Any], n: int) -> float:
    """CPU seconds per call of ``fn`` over ``n`` calls."""
    t = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t) / n


def step_cpu(env: Any, action: Callable[[int], Any], n: int) -> tuple[float, float]:
    """(CPU s per step, CPU s per reset + step) of a one-step episode loop."""
    i = iter(range(10 ** 12))

    def episode() -> None:
        env.reset()
        env.step(action(next(i)))

    episode_s = cpu_per_call(episode, n)
    reset_s = cpu_per_call(env.reset, n)
    return episode_s - reset_s, episode_s


def median_ratio(num: list[float], den: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(num, den))


def table(rows: list[tuple[str, str, str]]) -> str:
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{w0}}  {b:>{w1}}  {c}" for a, b, c in rows)


# ----------------------------------------------------------------------------------------------- row a

def row_a(args: argparse.Namespace) -> dict[str, Any]:
    """Env step CPU time vs CartPole-v1 and vs a bare loop (median over interleaved rounds)."""
    from bpa_gym.receivers.scripted import ScriptedReceiver

    n, rounds = args.steps, args.rounds
    receiver = ScriptedReceiver(lambda messages: INSTANT_RESPONSE, finish_reason="stop", name="instant")
    gsm8k = gym.make("BayesPersuasion-GSM8K-v0", receiver=receiver, data_dir=str(args.data_dir))
    envs: dict[str, tuple[Any, Callable[[int], Any]]] = {
        "cartpole": (gym.make("CartPole-v1"), lambda i: i % 2),
        "gsm8k": (gsm8k, lambda i: i % 5),
        "tabular_signal": (gym.make("BayesPersuasion-Prosecutor-v0", action="signal"), lambda i: i % 2),
    }
    scheme = np.array([[4 / 7, 3 / 7], [0.0, 1.0]], dtype=np.float32)  # the optimum, as an agent sends it
    envs["tabular_scheme"] = (gym.make("BayesPersuasion-Prosecutor-v0", action="scheme"), lambda i: scheme)
    for env, _ in envs.values():
        env.reset(seed=0)
        env.unwrapped.reset(seed=0)

    # the bare loops: the same work without Gymnasium
    core = gsm8k.unwrapped
    game, items, library = core.game, core.items, core.signal_library
    prosecutor = envs["tabular_signal"][0].unwrapped.game
    rng = np.random.default_rng(0)
    from bpa_gym.common.sampling import sample_categorical

    def bare_gsm8k(i: int) -> None:
        item = items[i % len(items)]
        (gen,) = receiver.generate([game.template.render(item, library[i % 5])])
        game.task.score(gen.text, item)

    def bare_scheme(i: int) -> None:
        ev = prosecutor.evaluate(scheme)
        state = sample_categorical(prosecutor.prior, rng)
        signal = sample_categorical(ev.scheme[state], rng)
        float(prosecutor.sender_utility[state, ev.actions[signal]])

    posterior = np.array([0.6, 0.4])

    def bare_signal(i: int) -> None:
        state = sample_categorical(prosecutor.prior, rng)
        float(prosecutor.sender_utility[state, int(prosecutor.best_response(posterior))])

    bare = {"gsm8k": bare_gsm8k, "tabular_signal": bare_signal, "tabular_scheme": bare_scheme}

    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        receiver.reset()  # it records every prompt
        for name, (env, action) in envs.items():
            for wrapped in ("wrapped", "unwrapped"):
                target = env if wrapped == "wrapped" else env.unwrapped
                step_s, episode_s = step_cpu(target, action, n)
                samples.setdefault(f"{name}/{wrapped}/step", []).append(step_s)
                samples.setdefault(f"{name}/{wrapped}/episode", []).append(episode_s)
            if name in bare:
                k = iter(range(10 ** 12))
                samples.setdefault(f"{name}/bare", []).append(cpu_per_call(lambda: bare[name](next(k)), n))
    receiver.reset()

    out: dict[str, Any] = {"steps_per_round": n, "rounds": rounds, "instant_response_chars": len(INSTANT_RESPONSE),
                           "median_us": {k: statistics.median(v) * 1e6 for k, v in samples.items()}, "ratios": {}}
    for name in ("gsm8k", "tabular_signal", "tabular_scheme"):
        for wrapped in ("wrapped", "unwrapped"):
            r = out["ratios"]
            r[f"{name}/{wrapped} step vs cartpole/{wrapped} step"] = median_ratio(
                samples[f"{name}/{wrapped}/step"], samples[f"cartpole/{wrapped}/step"])
            r[f"{name}/{wrapped} reset+step vs cartpole/{wrapped} reset+step"] = median_ratio(
                samples[f"{name}/{wrapped}/episode"], samples[f"cartpole/{wrapped}/episode"])
            r[f"{name}/{wrapped} step vs bare loop"] = median_ratio(
                samples[f"{name}/{wrapped}/step"], samples[f"{name}/bare"])
    out["goals"] = {
        "gsm8k step <= 3x cartpole (wrapped, unwrapped)": [
            out["ratios"][f"gsm8k/{w} step vs cartpole/{w} step"] <= 3 for w in ("wrapped", "unwrapped")],
        "tabular step <= 2x cartpole (signal, scheme; wrapped, unwrapped)": [
            out["ratios"][f"tabular_{m}/{w} step vs cartpole/{w} step"] <= 2
            for m in ("signal", "scheme") for w in ("wrapped", "unwrapped")],
    }
    return out


# ----------------------------------------------------------------------------------------------- rows c, d, e

def gsm8k_prompts(args: argparse.Namespace, count: int, offset: int = 0) -> list[Any]:
    from bpa_gym.tasks.gsm8k import GSM8KTask

    task = GSM8KTask(args.data_dir)
    template = task.default_template()
    return [template.render(item, "") for item in task.load("test")[offset:offset + count]]


def tokens(gens: list[Any]) -> int:
    return sum(g.completion_tokens or 0 for g in gens)


class ProcessCPU:
    """CPU seconds used by a process and its children (psutil; None without it)."""

    def __init__(self, pid: int | None) -> None:
        try:
            import psutil

            self.proc = psutil.Process(pid) if pid else psutil.Process()
        except Exception:  # noqa: BLE001 - psutil missing or the process gone: no CPU figure
            self.proc = None

    def read(self) -> float | None:
        if self.proc is None:
            return None
        total = 0.0
        for p in [self.proc] + self.proc.children(recursive=True):
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except Exception:  # noqa: BLE001 - a child that exited
                pass
        return total


def timed(fn: Callable[[], Any], cpu: ProcessCPU) -> tuple[Any, float, float | None]:
    c0, t0 = cpu.read(), time.perf_counter()
    result = fn()
    wall, c1 = time.perf_counter() - t0, cpu.read()
    return result, wall, (c1 - c0) if c0 is not None and c1 is not None else None


def load_generator(url: str, bodies: list[dict[str, Any]], concurrency: int) -> int:
    """Raw concurrent httpx POSTs of ``bodies``; the completion tokens the server reports."""
    import httpx

    async def run() -> int:
        gate = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(timeout=600, limits=limits,
                                     headers={"Authorization": "Bearer EMPTY"}) as client:
            async def one(body: dict[str, Any]) -> int:
                async with gate:
                    r = await client.post(url, json=body)
                    r.raise_for_status()
                    return int(r.json()["usage"]["completion_tokens"])

            return sum(await asyncio.gather(*(one(b) for b in bodies)))

    return asyncio.run(run())


def row_b(args: argparse.Namespace) -> dict[str, Any]:
    """Vector-env rollout vs raw batched generate on the same prompts (same Receiver object)."""
    from bpa_gym.receivers.smollm2 import SmolLM2Receiver
    from bpa_gym.signals import MATH_SIGNALS
    from bpa_gym.tasks.gsm8k import GSM8KTask

    n, max_new = args.batch, args.max_new_tokens
    task = GSM8KTask(args.data_dir)
    items = task.load("test")[:n]
    actions = [i % len(MATH_SIGNALS) for i in range(n)]
    template = task.default_template()
    prompts = [template.render(it, MATH_SIGNALS[a]) for it, a in zip(items, actions)]
    receiver = SmolLM2Receiver(max_new_tokens=max_new, batch_size=n)
    receiver.generate(gsm8k_prompts(args, 1, offset=n))  # warm-up on another item
    venv = gym.make_vec("BayesPersuasion-GSM8K-v0", num_envs=n, vectorization_mode="vector_entry_point",
                        receiver=receiver, data_dir=args.data_dir, cache=False)
    me = ProcessCPU(None)
    raw_wall, vec_wall, raw_cpu, vec_cpu = [], [], [], []
    raw_texts = vec_texts = None
    for _ in range(args.rounds_server):
        gens, wall, cpu = timed(lambda: receiver.generate(prompts), me)
        raw_texts = [g.text for g in gens]
        raw_wall.append(wall)
        raw_cpu.append(cpu)
        venv.reset(options={"items": items})
        (_, rewards, _, _, info), wall, cpu = timed(lambda: venv.step(actions), me)
        vec_texts = list(info["final_info"]["response"])
        vec_wall.append(wall)
        vec_cpu.append(cpu)
    venv.close()
    assert vec_texts == raw_texts, "the vector env's responses differ from raw generate on the same prompts"
    return {
        "vector_vs_raw_wall": median_ratio(raw_wall, vec_wall),
        "vector_vs_raw_cpu": median_ratio(raw_cpu, vec_cpu) if None not in raw_cpu + vec_cpu else None,
        "raw_wall_s": raw_wall, "vector_wall_s": vec_wall, "batch": n, "max_new_tokens": max_new,
    }


def rows_cde(args: argparse.Namespace, rows: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    n, max_new = args.batch, args.max_new_tokens
    prompts = gsm8k_prompts(args, n)
    warm = gsm8k_prompts(args, 1, offset=n)  # a different item: no prefix-cache head start
    me = ProcessCPU(None)
    hf = None
    if rows & {"c", "d"}:
        from bpa_gym.receivers.smollm2 import SmolLM2Receiver

        hf = SmolLM2Receiver(max_new_tokens=max_new, batch_size=n)
        hf.generate(warm)

    if "d" in rows:
        from bpa_gym.receivers.caching import CachingReceiver

        with tempfile.TemporaryDirectory() as tmp:
            cached = CachingReceiver(hf, Path(tmp) / "responses.sqlite")
            live, live_wall, live_cpu = timed(lambda: cached.generate(prompts), me)
            replay, replay_wall, replay_cpu = timed(lambda: cached.generate(prompts), me)
            key = [(g.text, g.finish_reason, g.prompt_tokens, g.completion_tokens) for g in live]
            assert key == [(g.text, g.finish_reason, g.prompt_tokens, g.completion_tokens) for g in replay], \
                "cache replay differs from the live answers"
            assert cached.hits == n and cached.misses == n, (cached.hits, cached.misses)
            cached.cache.close()
        out["d"] = {"prompts": n, "max_new_tokens": max_new, "live_wall_s": live_wall, "replay_wall_s": replay_wall,
                    "live_cpu_s": live_cpu, "replay_cpu_s": replay_cpu, "identical": True,
                    "replay_speedup_wall": live_wall / replay_wall,
                    "replay_speedup_cpu": (live_cpu / replay_cpu) if live_cpu and replay_cpu else None}

    if rows & {"c", "e"}:
        from bpa_gym.serving import VLLMServer

        server = VLLMServer("smollm2", max_num_seqs=n)
        t0 = time.perf_counter()
        server.start()
        start_s = time.perf_counter() - t0
        try:
            server_cpu = ProcessCPU(server.process.pid if server.process else None)
            client = server.receiver(max_new_tokens=max_new)
            client.generate(warm)
            if "c" in rows:
                assert hf is not None
                hf_gens, hf_wall, hf_cpu = timed(lambda: hf.generate(prompts), me)
                vl_gens, vl_wall, vl_cpu = timed(lambda: client.generate(prompts), server_cpu)
                assert all(g.error is None for g in vl_gens), [g.error for g in vl_gens if g.error]
                same = sum(a.text == b.text for a, b in zip(hf_gens, vl_gens))
                hf_tps, vl_tps = tokens(hf_gens) / hf_wall, tokens(vl_gens) / vl_wall
                c: dict[str, Any] = {
                    "prompts": n, "max_new_tokens": max_new, "server_start_s": start_s,
                    "hf_tokens": tokens(hf_gens), "hf_wall_s": hf_wall, "hf_cpu_s": hf_cpu, "hf_tok_per_s": hf_tps,
                    "vllm_tokens": tokens(vl_gens), "vllm_wall_s": vl_wall, "vllm_server_cpu_s": vl_cpu,
                    "vllm_tok_per_s": vl_tps, "vllm_vs_hf_wall": vl_tps / hf_tps,
                    "vllm_vs_hf_cpu": ((tokens(vl_gens) / vl_cpu) / (tokens(hf_gens) / hf_cpu)
                                       if vl_cpu and hf_cpu else None),
                    "same_text_as_hf": f"{same}/{n}",
                }
                # the openai: client vs a plain load generator, alternated, median ratio
                bodies = [client.request_body(p) for p in prompts]
                ratios, client_tps, raw_tps = [], [], []
                for _ in range(args.rounds_server):
                    gens, wall, _ = timed(lambda: client.generate(prompts), server_cpu)
                    client_tps.append(tokens(gens) / wall)
                    raw, wall, _ = timed(lambda: load_generator(client.url, bodies, n), server_cpu)
                    raw_tps.append(raw / wall)
                    ratios.append(client_tps[-1] / raw_tps[-1])
                c.update({"client_tok_per_s": client_tps, "loadgen_tok_per_s": raw_tps,
                          "client_vs_loadgen": statistics.median(ratios)})
                out["c"] = c
            if "e" in rows:
                one = server.receiver(max_new_tokens=max_new, max_concurrency=1)
                seq, seq_wall, _ = timed(lambda: one.generate(prompts), server_cpu)
                par, par_wall, _ = timed(lambda: client.generate(prompts), server_cpu)
                one.close()
                out["e"] = {"prompts": n, "max_new_tokens": max_new, "concurrency_1_tok_per_s": tokens(seq) / seq_wall,
                            f"concurrency_{n}_tok_per_s": tokens(par) / par_wall,
                            "speedup": (tokens(par) / par_wall) / (tokens(seq) / seq_wall)}
            client.close()
        finally:
            server.stop()
    return out


# ----------------------------------------------------------------------------------------------- main

def summary(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = [("row / figure", "ratio", "detail")]
    if "a" in results:
        a = results["a"]
        us = a["median_us"]
        for key, value in a["ratios"].items():
            name = key.split(" ")[0]
            detail = ""
            w = name.split("/")[1]
            if "reset+step vs cartpole" in key:
                detail = f"{us[name + '/episode']:.1f} us vs {us[f'cartpole/{w}/episode']:.1f} us"
            elif "step vs cartpole" in key:
                detail = f"{us[name + '/step']:.1f} us vs {us[f'cartpole/{w}/step']:.1f} us"
            elif "bare" in key:
                detail = f"{us[name + '/step']:.1f} us vs {us[name.split('/')[0] + '/bare']:.1f} us"
            rows.append((f"a  {key}", f"{value:.2f}", detail))
    if "b" in results:
        b = results["b"]
        rows.append(("b  vector-env rollout vs raw batched generate (throughput, wall)",
                     f"{b['vector_vs_raw_wall']:.3f}",
                     f"batch {b['batch']}, {b['max_new_tokens']} tokens; raw {statistics.median(b['raw_wall_s']):.2f} s "
                     f"vs vector {statistics.median(b['vector_wall_s']):.2f} s; identical responses"))
    if "c" in results:
        c = results["c"]
        rows.append(("c  vLLM vs in-process HF, tokens/s (wall)", f"{c['vllm_vs_hf_wall']:.2f}",
                     f"{c['vllm_tok_per_s']:.0f} vs {c['hf_tok_per_s']:.0f} tok/s; same text {c['same_text_as_hf']}"))
        if c["vllm_vs_hf_cpu"] is not None:
            rows.append(("c  vLLM vs in-process HF, tokens/CPU-s", f"{c['vllm_vs_hf_cpu']:.2f}",
                         f"server {c['vllm_server_cpu_s']:.1f} CPU-s vs HF {c['hf_cpu_s']:.1f} CPU-s"))
        rows.append(("c  openai: client vs raw load generator", f"{c['client_vs_loadgen']:.3f}",
                     f"median of {len(c['client_tok_per_s'])} alternated pairs"))
    if "d" in results:
        d = results["d"]
        rows.append(("d  cache replay vs live (speedup, wall)", f"{d['replay_speedup_wall']:.0f}",
                     f"{d['live_wall_s']:.2f} s live vs {d['replay_wall_s'] * 1e3:.1f} ms replay; identical"))
    if "e" in results:
        e = results["e"]
        n = e["prompts"]
        rows.append((f"e  concurrency {n} vs 1 (tokens/s)", f"{e['speedup']:.2f}",
                     f"{e[f'concurrency_{n}_tok_per_s']:.0f} vs {e['concurrency_1_tok_per_s']:.0f} tok/s"))
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="a,b,c,d,e", help="comma-separated rows to run: a, b, c, d, e (default all)")
    p.add_argument("--quick", action="store_true", help="a small run (fewer steps, prompts and tokens)")
    p.add_argument("--steps", type=int, default=None, help="row a: steps per env per round (default 3000; quick 500)")
    p.add_argument("--rounds", type=int, default=None, help="row a: interleaved rounds (default 7; quick 3)")
    p.add_argument("--batch", type=int, default=None, help="rows c-e: prompts, batch size and concurrency N "
                                                            "(default 16; quick 4)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="rows c-e (default 64; quick 16)")
    p.add_argument("--rounds-server", type=int, default=3, help="row c: client/load-generator pairs (default 3)")
    p.add_argument("--data-dir", type=Path, default=Path(os.environ.get("BPA_DATA_DIR", DEFAULT_DATA)))
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "throughput" / "results.json")
    args = p.parse_args(argv)
    rows = {r.strip() for r in args.rows.split(",") if r.strip()}
    unknown = rows - {"a", "b", "c", "d", "e"}
    if unknown:
        p.error(f"unknown rows {sorted(unknown)}; choose from a, b, c, d, e")
    args.steps = args.steps or (500 if args.quick else 3000)
    args.rounds = args.rounds or (3 if args.quick else 7)
    args.batch = args.batch or (4 if args.quick else 16)
    args.max_new_tokens = args.max_new_tokens or (16 if args.quick else 64)
    if args.quick:
        args.rounds_server = min(args.rounds_server, 2)

    results: dict[str, Any] = {
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_avg": os.getloadavg()},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    if "a" in rows:
        results["a"] = row_a(args)
    if "b" in rows:
        results["b"] = row_b(args)
    if rows & {"c", "d", "e"}:
        results.update(rows_cde(args, rows))
    results["machine"]["load_avg_end"] = os.getloadavg()
    print(table(summary(results)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")
    return results


if __name__ == "__main__":
    main()
