"""The in-process HF Receiver (SmolLM2-135M on CPU): thread count, bfloat16, and the decoding engine.

Every row is measured side by side with its baseline in the same run, the variants interleaved
(A B A B ...), each ``--repeats`` times; CPU time (this process, all threads) and wall time are
both reported, as median and [min, max], with the per-repeat ratio to the baseline.  On a busy
machine trust CPU time and the ratios more than absolute wall times.

Sections:

* ``threads``: 8 GSM8K prompts, ``max_new_tokens=32``, one batch: ``num_threads=1`` vs torch's
  default (one per available core; the baseline).
* ``dtype``: 16 GSM8K prompts, greedy, ``max_new_tokens=256``: ``dtype="bfloat16"`` vs float32
  (baseline): speed, and how many texts and extracted answers change.
* ``engine``: the same 16 prompts, ``batch_size=8``: ``engine="continuous"`` vs ``"generate"``
  (baseline): speed and how many texts agree.

Run (about 10-20 minutes on a 2-core CPU; ``--quick`` for a smoke run)::

    BPA_CACHE_DIR=/tmp/bpa-cache python benchmarks/hf_receiver.py [--repeats 5] [--sections threads,dtype]

Prints a table and writes ``runs/hf_receiver-<time>.json``.  ``OMP_NUM_THREADS`` is ignored for
the comparison: every variant sets its thread count explicitly.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch

from bpa_gym.receivers.smollm2 import SmolLM2Receiver
from bpa_gym.tasks.gsm8k import GSM8KTask

ROOT = Path(__file__).resolve().parents[1]


def gsm8k_prompts(data_dir: Path, n: int) -> tuple[list[Any], list[Any], GSM8KTask]:
    task = GSM8KTask(data_dir)
    template = task.default_template()
    items = task.load("test")[:n]
    return [template.render(item, "") for item in items], items, task


def measure(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(CPU seconds of this process, wall seconds, result) of one call."""
    c0, w0 = time.process_time(), time.perf_counter()
    result = fn()
    return time.process_time() - c0, time.perf_counter() - w0, result


def interleaved(variants: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict[str, Any]]:
    """Run the variants in turn, ``repeats`` rounds; the first variant is the baseline."""
    samples: dict[str, dict[str, list[float]]] = {k: {"cpu": [], "wall": []} for k in variants}
    results: dict[str, Any] = {}
    for r in range(repeats):
        # Alternate the order each round, so neither variant always runs first (warm caches, drifting load).
        names = list(variants) if r % 2 == 0 else list(reversed(list(variants)))
        for name in names:
            cpu, wall, result = measure(variants[name])
            samples[name]["cpu"].append(cpu)
            samples[name]["wall"].append(wall)
            results.setdefault(name, result)
            print(f"    round {r + 1}/{repeats} {name:<28} cpu {cpu:7.2f} s  wall {wall:7.2f} s", flush=True)
    base = next(iter(variants))
    out = {}
    for name, s in samples.items():
        row: dict[str, Any] = {"result": results[name]}
        for kind in ("cpu", "wall"):
            ratios = [a / b for a, b in zip(s[kind], samples[base][kind])]
            row[kind] = {"samples_s": s[kind], "median_s": statistics.median(s[kind]),
                         "min_s": min(s[kind]), "max_s": max(s[kind]),
                         "ratio_to_baseline": {"median": statistics.median(ratios), "min": min(ratios),
                                               "max": max(ratios)}}
        out[name] = row
    return out


def run_threads(args: argparse.Namespace) -> dict[str, Any]:
    prompts, _, _ = gsm8k_prompts(args.data_dir, 8)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    receivers = {n: SmolLM2Receiver(max_new_tokens=32, batch_size=8, num_threads=n, device="cpu")
                 for n in sorted({cores, 1}, reverse=True)}
    one = receivers[1]
    for r in receivers.values():
        r.model = one.model  # one copy of the weights
    one.generate(prompts[:2])  # warm-up
    variants = {f"num_threads={n}" + (" (torch default)" if n == cores else ""): (lambda r=r: r.generate(prompts))
                for n, r in receivers.items()}
    rows = interleaved(variants, args.repeats)
    for row in rows.values():
        row.pop("result")
    return {"prompts": len(prompts), "max_new_tokens": 32, "batch_size": 8, "cores": cores, "rows": rows}


def _texts(gens: list[Any]) -> list[str]:
    return [g.text for g in gens]


def run_dtype(args: argparse.Namespace) -> dict[str, Any]:
    prompts, items, task = gsm8k_prompts(args.data_dir, args.answer_prompts)
    kw = dict(max_new_tokens=args.max_new_tokens, batch_size=8, num_threads=1, device="cpu")
    fp32 = SmolLM2Receiver(dtype="float32", **kw)
    bf16 = SmolLM2Receiver(dtype="bfloat16", **kw)
    rows = interleaved({"float32": lambda: fp32.generate(prompts), "bfloat16": lambda: bf16.generate(prompts)},
                       max(1, args.repeats // 2))
    base, other = rows["float32"].pop("result"), rows["bfloat16"].pop("result")
    answers = lambda gens: [task.score(g.text, it).extracted for g, it in zip(gens, items)]  # noqa: E731
    correct = lambda gens: sum(task.score(g.text, it).correct for g, it in zip(gens, items))  # noqa: E731
    rows["bfloat16"]["changed_texts"] = sum(a != b for a, b in zip(_texts(base), _texts(other)))
    rows["bfloat16"]["changed_answers"] = sum(a != b for a, b in zip(answers(base), answers(other)))
    rows["float32"]["correct"], rows["bfloat16"]["correct"] = correct(base), correct(other)
    return {"prompts": len(prompts), "max_new_tokens": args.max_new_tokens, "batch_size": 8, "num_threads": 1,
            "rows": rows}


def run_engine(args: argparse.Namespace) -> dict[str, Any]:
    prompts, _, _ = gsm8k_prompts(args.data_dir, args.answer_prompts)
    kw = dict(max_new_tokens=args.max_new_tokens, batch_size=8, num_threads=1, device="cpu")
    plain = SmolLM2Receiver(**kw)
    continuous = SmolLM2Receiver(engine="continuous", **kw)
    continuous.model = plain.model
    rows = interleaved({"engine=generate": lambda: plain.generate(prompts),
                        "engine=continuous": lambda: continuous.generate(prompts)}, max(1, args.repeats // 2))
    base, other = rows["engine=generate"].pop("result"), rows["engine=continuous"].pop("result")
    rows["engine=continuous"]["agree"] = sum(a == b for a, b in zip(_texts(base), _texts(other)))
    tokens = [g.completion_tokens for g in base]
    return {"prompts": len(prompts), "max_new_tokens": args.max_new_tokens, "batch_size": 8, "num_threads": 1,
            "completion_tokens": tokens, "rows": rows}


SECTIONS = {"threads": run_threads, "dtype": run_dtype, "engine": run_engine}


def print_table(report: dict[str, Any]) -> None:
    print()
    print(f"{'section':<8} {'variant':<30} {'CPU s (median [min,max])':>26} {'x baseline':>18} "
          f"{'wall s (median [min,max])':>27} {'x baseline':>18}  notes")
    for section, data in report["sections"].items():
        for name, row in data["rows"].items():
            cells = []
            for kind in ("cpu", "wall"):
                m = row[kind]
                r = m["ratio_to_baseline"]
                cells.append(f"{m['median_s']:7.2f} [{m['min_s']:6.2f},{m['max_s']:6.2f}]")
                cells.append(f"{r['median']:5.2f} [{r['min']:4.2f},{r['max']:4.2f}]")
            notes = ", ".join(f"{k}={v}" for k, v in row.items() if k not in ("cpu", "wall"))
            print(f"{section:<8} {name:<30} {cells[0]:>26} {cells[1]:>18} {cells[2]:>27} {cells[3]:>18}  {notes}")
        print(f"{'':<8} ({data['prompts']} prompts, max_new_tokens={data['max_new_tokens']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds of the threads section (others: half)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated: " + ",".join(SECTIONS))
    parser.add_argument("--answer-prompts", type=int, default=16, help="GSM8K prompts for dtype and engine")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="for dtype and engine (the env default)")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--quick", action="store_true", help="2 repeats, 4 prompts, 32 tokens: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.answer_prompts, args.max_new_tokens = 2, 4, 32
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    before = torch.get_num_threads()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    report: dict[str, Any] = {
        "benchmark": "hf_receiver", "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "loadavg_at_start": load,
                    "torch": torch.__version__, "torch_default_threads": before},
        "args": {k: str(v) for k, v in vars(args).items()}, "sections": {},
    }
    for section in sections:
        print(f"== {section}", flush=True)
        report["sections"][section] = SECTIONS[section](args)
    report["machine"]["loadavg_at_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    print_table(report)
    out = ROOT / "runs" / f"hf_receiver-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nload average at start {load}, at end {report['machine']['loadavg_at_end']}; wrote {out}")


if __name__ == "__main__":
    main()
