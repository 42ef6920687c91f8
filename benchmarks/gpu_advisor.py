"""Benchmark PPO iterations of a GPT-2-small Advisor against a Receiver of realistic size.

Advisor: GPT-2 small, randomly initialised from ``../shared/models/gpt2/config.json``
(no pretrained weights are needed: speed and memory do not depend on them).
Receiver: a randomly initialised causal LM with the architecture of
Qwen2-0.5B (``--receiver-arch qwen2-0.5b``, default) or SmolLM2-360M
(``smollm2-360m``), with the GPT-2 tokenizer, wrapped in bpa_gym's
:class:`~bpa_gym.receivers.hf.HFReceiver` and played through a vector view of
the GSM8K env (one Receiver batch per step).  The Receiver keeps its real vocabulary size (so its LM head
costs what the real one costs); embedding rows past the GPT-2 tokenizer are
zeroed so that greedy decoding only emits ids the tokenizer can decode.  A
random Receiver almost never emits EOS, so every answer runs to
``--receiver-max-new-tokens``: a worst case for Receiver time.

Each iteration is exactly what ``agents/ppo_text.py`` runs (its ``rollout``
and ``ppo_update`` functions): Advisor generation, one vector-env step (one batched Receiver call),
the scoring pass (policy / reference log-probs and values), and the PPO
update.  The script prints a table of the time split, samples/s, peak GPU
memory and the ratio of the iteration's wall time to the sum of its parts
(~1.0 means the parts account for the whole iteration), and writes JSON
(``--out``).  ``--tiny`` swaps in tiny configs for a CPU dry run (< 2 minutes).

Usage::

    python benchmarks/gpu_advisor.py --out runs/bench/gpu_advisor.json
    python benchmarks/gpu_advisor.py --tiny --out /tmp/tiny.json   # CPU dry run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from agents import ppo_text  # noqa: E402
from bpa_gym.common import resolve_device, seed_everything  # noqa: E402

#: Keys of the JSON report (tests check them).
REPORT_KEYS = ("config", "device", "samples_per_s", "time_s", "share", "peak_gpu_mem_gib",
               "ratio_iteration_to_parts", "reward_mean", "per_iteration")
PHASES = (("generate", "Advisor generation"), ("receiver", "Receiver (vector env step)"),
          ("score", "PPO scoring pass (logp/ref/values)"), ("update", "PPO update"))


def receiver_config(arch: str, vocab_size: int, tiny: bool, eos_token_id: int) -> Any:
    """The Receiver's config: Qwen2-0.5B or SmolLM2-360M shapes (tiny: 2 layers, 64 wide)."""
    from transformers import LlamaConfig, Qwen2Config

    common = dict(eos_token_id=eos_token_id, bos_token_id=eos_token_id, pad_token_id=eos_token_id)
    if tiny:
        return Qwen2Config(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                           tie_word_embeddings=True, **common)
    if arch == "qwen2-0.5b":
        return Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                           num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                           rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, **common)
    if arch == "smollm2-360m":
        return LlamaConfig(vocab_size=49152, hidden_size=960, intermediate_size=2560, num_hidden_layers=32,
                           num_attention_heads=15, num_key_value_heads=5, max_position_embeddings=8192,
                           rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True, **common)
    raise SystemExit(f"unknown --receiver-arch {arch!r}; use qwen2-0.5b or smollm2-360m")


def build_receiver(opts: argparse.Namespace, device: torch.device, tokenizer_dir: str) -> Any:
    from transformers import AutoModelForCausalLM

    from bpa_gym.receivers import HFReceiver

    tok = ppo_text.load_tokenizer(tokenizer_dir)
    config = receiver_config(opts.receiver_arch, len(tok), opts.tiny, tok.eos_token_id)
    dtype = torch.bfloat16 if opts.bf16 else torch.float32
    torch.manual_seed(opts.seed + 1)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config).to(dtype)
    if config.vocab_size > len(tok):
        with torch.no_grad():  # ids the GPT-2 tokenizer cannot decode: zero rows -> never the greedy argmax
            model.get_output_embeddings().weight[len(tok):].zero_()
    return HFReceiver(model, tokenizer=tok, batch_size=opts.receiver_batch_size,
                      max_new_tokens=opts.receiver_max_new_tokens, chat_template=None,
                      name=f"random:{'tiny' if opts.tiny else opts.receiver_arch}")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="tiny configs and budgets for a CPU dry run")
    p.add_argument("--iterations", type=int, default=None, help="measured PPO iterations (default 5; tiny 1)")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured warm-up iterations")
    p.add_argument("--batch-size", type=int, default=None, help="signals per iteration (default 64; tiny 8)")
    p.add_argument("--num-minibatches", type=int, default=None, help="minibatches per epoch (default 4; tiny 1)")
    p.add_argument("--micro-batch-size", type=int, default=None, help="rows per forward/backward (default: minibatch)")
    p.add_argument("--update-epochs", type=int, default=None, help="PPO epochs (default 4; tiny 1)")
    p.add_argument("--max-signal-tokens", type=int, default=None, help="Advisor tokens per signal (default 32; tiny 8)")
    p.add_argument("--max-prompt-tokens", type=int, default=256, help="Advisor prompt tokens kept")
    p.add_argument("--receiver-arch", default="qwen2-0.5b", help="qwen2-0.5b or smollm2-360m")
    p.add_argument("--receiver-max-new-tokens", type=int, default=None, help="Receiver tokens (default 128; tiny 8)")
    p.add_argument("--receiver-batch-size", type=int, default=None, help="Receiver generate batch (default: batch size)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast (Advisor) and bf16 weights (Receiver); default: on with CUDA")
    p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda'")
    p.add_argument("--data-dir", default=None, help="folder with gsm8k/ (default ../shared/data, then $BPA_DATA_DIR)")
    p.add_argument("--subset-size", type=int, default=512, help="GSM8K items the batches are drawn from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--torch-threads", type=int, default=None,
                   help="torch CPU threads (default: 1 for --tiny on CPU, where tiny matmuls gain nothing from "
                        "threads and a shared box makes them slower; else torch's default)")
    p.add_argument("--out", default=None, help="write the JSON report here")
    opts = p.parse_args(argv)
    defaults = dict(iterations=(1, 5), batch_size=(8, 64), num_minibatches=(1, 4), update_epochs=(1, 4),
                    max_signal_tokens=(8, 32), receiver_max_new_tokens=(8, 128))
    for k, (tiny, full) in defaults.items():
        if getattr(opts, k) is None:
            setattr(opts, k, tiny if opts.tiny else full)
    if opts.receiver_batch_size is None:
        opts.receiver_batch_size = opts.batch_size
    return opts


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    import gymnasium as gym

    import bpa_gym  # noqa: F401  (registers the envs)

    opts = parse(argv)
    device = resolve_device(opts.device)
    if opts.bf16 is None:
        opts.bf16 = device.type == "cuda"
    threads = opts.torch_threads or (1 if opts.tiny and device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    data_dir = opts.data_dir or (str(SHARED / "data") if (SHARED / "data").is_dir() else None)
    gpt2_dir = str(SHARED / "models" / "gpt2")
    seed_everything(opts.seed)

    args = ppo_text.Args(
        seed=opts.seed, device=str(device), bf16=opts.bf16, progress=False,
        policy="random:tiny" if opts.tiny else f"random:{gpt2_dir}", tokenizer=gpt2_dir,
        batch_size=opts.batch_size, num_minibatches=opts.num_minibatches, micro_batch_size=opts.micro_batch_size,
        update_epochs=opts.update_epochs, max_signal_tokens=opts.max_signal_tokens,
        max_prompt_tokens=opts.max_prompt_tokens, forward_batch_size=opts.micro_batch_size or opts.batch_size,
        num_iterations=opts.warmup + opts.iterations,
    )
    args.validate()
    receiver = build_receiver(opts, device, gpt2_dir)
    env = gym.make("BayesPersuasion-GSM8K-v0", receiver=receiver, signals="text", data_dir=data_dir,
                   split="test", subset_size=opts.subset_size)
    venv = ppo_text.make_vector_env(env, args.batch_size)
    observations, _ = venv.reset(seed=opts.seed)
    actor_critic, tokenizer = ppo_text.make_policy(args.policy, args.tokenizer, seed=opts.seed, device=device)
    ref_lm = ppo_text.make_reference(actor_critic)
    optimizer = torch.optim.Adam(actor_critic.parameters(), lr=args.learning_rate, eps=1e-5)
    kl_ctl = ppo_text.KLController(args.init_kl_coef, args.target_kl, args.kl_horizon)
    stop_ids = ppo_text.stop_token_ids(tokenizer, args.stop_at_newline)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    rows = []
    for i in range(opts.warmup + opts.iterations):
        ppo_text.sync(device)
        t0 = time.perf_counter()
        batch, observations = ppo_text.rollout(venv, observations, actor_critic, ref_lm, tokenizer, args, stop_ids,
                                               device)
        ppo_text.sync(device)
        t1 = time.perf_counter()
        stats = ppo_text.ppo_update(actor_critic, optimizer, batch, args, kl_ctl.value, device)
        ppo_text.sync(device)
        t2 = time.perf_counter()
        kl_ctl.update(stats["kl"], args.batch_size)
        row = {"iteration": i, "warmup": i < opts.warmup, **batch["timing"], "update": t2 - t1,
               "iteration_s": t2 - t0, "reward": batch["scores"].mean().item(),
               "signal_tokens": batch["response_mask"].float().sum(1).mean().item()}
        rows.append(row)
        print(f"iter {i}{' (warm-up)' if row['warmup'] else ''}: {row['iteration_s']:.2f}s "
              f"gen {row['generate']:.2f} recv {row['receiver']:.2f} score {row['score']:.2f} "
              f"update {row['update']:.2f}", file=sys.stderr)

    measured = [r for r in rows if not r["warmup"]] or rows
    time_s = {k: float(np.mean([r[k] for r in measured])) for k, _ in PHASES}
    time_s["iteration"] = float(np.mean([r["iteration_s"] for r in measured]))
    parts = sum(time_s[k] for k, _ in PHASES)
    report = {
        "config": {**vars(opts), "advisor": args.policy, "advisor_params": sum(p.numel() for p in actor_critic.parameters()),
                   "receiver": receiver.name, "receiver_params": sum(p.numel() for p in receiver.model.parameters())},
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()})",
        "samples_per_s": args.batch_size / time_s["iteration"],
        "time_s": time_s,
        "share": {k: time_s[k] / time_s["iteration"] for k, _ in PHASES},
        "peak_gpu_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "ratio_iteration_to_parts": time_s["iteration"] / parts,
        "reward_mean": float(np.mean([r["reward"] for r in measured])),
        "per_iteration": rows,
    }
    print_table(report)
    if opts.out:
        Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
        Path(opts.out).write_text(json.dumps(report, indent=2))
        print(f"wrote {opts.out}")
    return report


def print_table(report: dict[str, Any]) -> None:
    c = report["config"]
    t = report["time_s"]
    print(f"\nAdvisor {c['advisor']} ({c['advisor_params'] / 1e6:.1f}M) vs Receiver {c['receiver']} "
          f"({c['receiver_params'] / 1e6:.1f}M) on {report['device']}; batch {c['batch_size']}, "
          f"signal <= {c['max_signal_tokens']} tok, answer <= {c['receiver_max_new_tokens']} tok, "
          f"{c['update_epochs']} epochs x {c['num_minibatches']} minibatches, bf16={c['bf16']}, "
          f"{c['iterations']} measured iterations")
    print(f"| {'phase':<36} | {'s/iter':>8} | {'share':>6} |")
    print(f"|{'-' * 38}|{'-' * 10}|{'-' * 8}|")
    for k, label in PHASES:
        print(f"| {label:<36} | {t[k]:8.3f} | {report['share'][k]:6.1%} |")
    parts = sum(t[k] for k, _ in PHASES)
    print(f"| {'sum of parts':<36} | {parts:8.3f} | {parts / t['iteration']:6.1%} |")
    print(f"| {'iteration (wall)':<36} | {t['iteration']:8.3f} | {1:6.1%} |")
    mem = report["peak_gpu_mem_gib"]
    print(f"samples/s: {report['samples_per_s']:.2f}   peak GPU memory: "
          f"{'n/a (CPU)' if mem is None else f'{mem:.2f} GiB'}   "
          f"iteration / sum of parts: {report['ratio_iteration_to_parts']:.3f}")


def main(argv: Sequence[str] | None = None) -> None:
    run(argv)


if __name__ == "__main__":
    main()
