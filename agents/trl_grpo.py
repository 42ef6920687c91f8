"""GRPO / RLOO Advisor with TRL on a free-text persuasion env (CleanRL-style, one readable file).

The Advisor is a small causal LM (GPT-2 class).  For each information item (a
GSM8K question) it writes a free-text *signal*; the black-box Receiver LLM
answers the question with that signal in its context; the reward is the
Receiver's correctness (Bai et al. 2024, Bayesian Persuasion Alignment).

TRL does the RL: ``GRPOTrainer`` (``--algo grpo``, default) or ``RLOOTrainer``
(``--algo rloo``).  bpa_gym supplies the prompt dataset and the reward function
(:mod:`bpa_gym.integrations.trl`); each reward call plays the whole batch of
signals against the Receiver in one batched call.

Usage::

    # real Receiver (SmolLM2, offline), pretrained GPT-2 Advisor
    python agents/trl_grpo.py --policy gpt2 --data-dir ../shared/data --subset-size 256
    # random-init Advisor (no pretrained weights needed) with the real GPT-2 tokenizer
    python agents/trl_grpo.py --policy random:tiny --tokenizer ../shared/models/gpt2 --data-dir ../shared/data
    # resume the latest checkpoint of a run
    python agents/trl_grpo.py ... --output-dir runs/my-run --resume latest
    tensorboard --logdir runs

TensorBoard: TRL's own scalars land under ``train/...`` (``train/reward``,
``train/kl``, ...); this script also writes CleanRL-style tags into the same
folder: ``charts/reward``, ``charts/reward_std``, ``charts/parse_rate``,
``charts/signal_chars``, ``charts/completion_length``, ``charts/learning_rate``,
``losses/loss``, ``losses/kl``, ``losses/entropy``, ``losses/grad_norm``.

Random-init policies (``--policy random:tiny`` or ``random:<config folder>``)
are saved to ``<output_dir>/init_policy`` first and loaded from there: with
``--beta > 0`` TRL rebuilds the reference model from the policy's
``config._name_or_path``, which must therefore be a real folder holding the
*same* initial weights.  A resumed run reuses that folder.
"""

import dataclasses
import os
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Any, Literal, Optional

import gymnasium as gym
import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

import bpa_gym  # noqa: F401  (registers the environments)
from bpa_gym import ConfigError
from bpa_gym.common import atomic_path, seed_everything
from bpa_gym.integrations.trl import DEFAULT_TEMPLATE, advisor_dataset, make_reward_fn

#: Random-init GPT-2 presets for ``--policy random:<preset>`` (vocab size comes from the tokenizer).
RANDOM_PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, n_positions=512),
    "small": dict(n_layer=4, n_head=4, n_embd=128, n_positions=1024),
}


@dataclass
class Args:
    """Every setting of a run; each field is one ``--kebab-case`` flag of the command line."""

    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """Name of this experiment."""
    seed: int = 1
    """Seed of the experiment (torch, numpy, random, TRL)."""
    algo: Literal["grpo", "rloo"] = "grpo"
    """RL algorithm: 'grpo' (GRPOTrainer) or 'rloo' (RLOOTrainer)."""
    cuda: bool = True
    """Use CUDA when it is available (otherwise the CPU)."""
    bf16: bool = False
    """Train in bfloat16 mixed precision."""
    track: bool = True
    """Log to TensorBoard."""

    # Environment
    env_id: str = "BayesPersuasion-GSM8K-v0"
    """bpa_gym env id (made with signals='text')."""
    data_dir: str | None = None
    """Folder holding gsm8k/ (default: $BPA_DATA_DIR, then the hub)."""
    split: str = "train"
    """Dataset split the Advisor trains on."""
    subset_size: int | None = 256
    """Use only the first N items of the split."""
    receiver: str = "smollm2"
    """Receiver spec: 'smollm2', 'hf:<id>', 'openai:<model>@<url>'."""
    receiver_max_new_tokens: int = 256
    """Tokens the Receiver may generate per answer."""

    # Policy (the Advisor)
    policy: str = "gpt2"
    """Hub id, local folder, or 'random:tiny' / 'random:small' / 'random:<config folder>'."""
    tokenizer: str | None = None
    """Tokenizer id/folder (default: the policy's; required for random:)."""
    prompt_template: str = DEFAULT_TEMPLATE
    """Advisor prompt; fields {question} and {item_id}."""

    # Algorithm
    total_steps: int = 200
    """Optimizer steps (TRL max_steps)."""
    learning_rate: float = 1e-5
    """Learning rate of the Adam optimizer."""
    per_device_train_batch_size: int = 8
    """Completions per device per micro-batch."""
    gradient_accumulation_steps: int = 1
    """Micro-batches per optimizer step."""
    num_generations: int = 4
    """Signals sampled per item (the GRPO/RLOO group size)."""
    max_completion_length: int = 48
    """Longest signal, in Advisor tokens."""
    temperature: float = 1.0
    """Advisor sampling temperature."""
    beta: float = 0.0
    """KL coefficient to the initial policy (0 = no reference model)."""
    activation_checkpointing: bool = False
    """Recompute activations in backward (TRL's default is on; off is faster for small Advisors)."""

    # Logging and checkpoints
    output_dir: str | None = None
    """Run folder (default: runs/<exp_name>__<algo>__<seed>)."""
    logging_dir: str | None = None
    """TensorBoard folder (default: <output_dir>/tb)."""
    logging_steps: int = 1
    """Log every N optimizer steps."""
    save_steps: int = 50
    """Checkpoint every N optimizer steps."""
    save_total_limit: int | None = 2
    """Keep at most N checkpoints."""
    resume: str = ""
    """'' (fresh), 'latest' (last checkpoint, must exist), 'auto' (latest if any), or a checkpoint path."""
    log_completions: bool = False
    """Print sample signals and rewards at each log."""


# ------------------------------------------------------------------ command line
def parse_args(argv: list[str] | None = None) -> Args:
    """:class:`Args` from the command line with ``tyro``: one ``--kebab-case`` flag per field, the field's
    docstring as its ``--help`` text (booleans are ``--flag/--no-flag``; optional values take ``None``)."""
    import tyro

    return tyro.cli(Args, args=argv, description=__doc__.split("\n\n")[0])


# ---------------------------------------------------------------------- setup
def run_dir(args: Args) -> str:
    return args.output_dir or os.path.join("runs", f"{args.exp_name}__{args.algo}__{args.seed}")


def load_tokenizer(args: Args):
    """The Advisor's tokenizer; GPT-2 has no pad token: pad = eos, left padding for generation."""
    source = args.tokenizer
    if source is None:
        if args.policy.startswith("random:"):
            raise ConfigError("a random-init policy needs --tokenizer (e.g. --tokenizer ../shared/models/gpt2)")
        source = args.policy
    tok = AutoTokenizer.from_pretrained(source)
    if len(tok) == 0:
        raise ConfigError(f"the tokenizer loaded from {source!r} is empty; point --tokenizer at a folder with tokenizer.json")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def build_policy(args: Args, tokenizer, out_dir: str) -> str:
    """The policy to hand TRL, as a hub id or folder.

    A random-init policy is written to ``<out_dir>/init_policy`` (weights and
    tokenizer) and loaded from there, so that TRL's reference model (built
    from ``config._name_or_path`` when ``beta > 0``) is the same network; an
    existing ``init_policy`` (a resumed run) is reused.
    """
    if not args.policy.startswith("random:"):
        return args.policy
    spec = args.policy[len("random:"):]
    init_dir = os.path.join(out_dir, "init_policy")
    if os.path.isfile(os.path.join(init_dir, "config.json")):
        return init_dir
    if spec in RANDOM_PRESETS:
        from transformers import GPT2Config

        config = GPT2Config(vocab_size=len(tokenizer), **RANDOM_PRESETS[spec])
    elif os.path.isdir(spec):
        config = AutoConfig.from_pretrained(spec)
    else:
        raise ConfigError(f"unknown random policy {args.policy!r}: use random:{'|random:'.join(RANDOM_PRESETS)} or random:<config folder>")
    if getattr(config, "vocab_size", len(tokenizer)) < len(tokenizer):
        raise ConfigError(f"config vocab_size {config.vocab_size} < tokenizer size {len(tokenizer)}")
    config.pad_token_id = tokenizer.pad_token_id
    config.eos_token_id = tokenizer.eos_token_id
    config.bos_token_id = tokenizer.bos_token_id
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    # Written to a temp folder and renamed into place: a killed run never leaves a half-written init_policy
    # that a resumed run would take for the real one.
    if os.path.isdir(init_dir):  # an incomplete folder (no config.json) from an older run
        shutil.rmtree(init_dir)
    with atomic_path(init_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return init_dir


class CleanRLScalars(TrainerCallback):
    """Mirror TRL's log entries into CleanRL-style TensorBoard tags (``charts/reward``, ``losses/kl``, ...)."""

    def __init__(self, logging_dir: str, reward_name: str, hparams: dict[str, Any]) -> None:
        self.logging_dir, self.reward_name, self.hparams = logging_dir, reward_name, hparams
        self.writer = None
        self.start = time.time()

    def _tags(self) -> dict[str, str]:
        r = self.reward_name
        return {
            "reward": "charts/reward",
            "reward_std": "charts/reward_std",
            f"rewards/{r}/mean": f"charts/{r}",
            f"{r}/parse_rate": "charts/parse_rate",
            f"{r}/signal_chars": "charts/signal_chars",
            "completions/mean_length": "charts/completion_length",
            "learning_rate": "charts/learning_rate",
            "loss": "losses/loss",
            "kl": "losses/kl",
            "entropy": "losses/entropy",
            "grad_norm": "losses/grad_norm",
        }

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(self.logging_dir)
        rows = "\n".join(f"|{k}|{v}|" for k, v in self.hparams.items())
        self.writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{rows}", state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.writer is None or not logs:
            return
        for key, tag in self._tags().items():
            v = logs.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.writer.add_scalar(tag, v, state.global_step)
        self.writer.add_scalar("charts/SPS", state.global_step / max(time.time() - self.start, 1e-9), state.global_step)
        self.writer.flush()

    def on_train_end(self, args, state, control, **kwargs):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def make_env(args: Args):
    return gym.make(
        args.env_id,
        receiver=args.receiver,
        receiver_kwargs={"max_new_tokens": args.receiver_max_new_tokens},
        data_dir=args.data_dir,
        split=args.split,
        subset_size=args.subset_size,
        signals="text",
    )


def make_trainer(args: Args, env: Any = None):
    """Build the TRL trainer (GRPO or RLOO) for ``args``; ``env`` overrides :func:`make_env` (e.g. a test Receiver)."""
    if args.algo not in ("grpo", "rloo"):
        raise ConfigError(f"--algo must be 'grpo' or 'rloo', got {args.algo!r}")
    if args.algo == "grpo":
        from trl import GRPOConfig as Config, GRPOTrainer as Trainer
    else:
        from trl import RLOOConfig as Config, RLOOTrainer as Trainer

    seed_everything(args.seed)  # TRL's trainer seeds again from config.seed
    out_dir = run_dir(args)
    os.makedirs(out_dir, exist_ok=True)
    logging_dir = args.logging_dir or os.path.join(out_dir, "tb")
    use_cuda = args.cuda and torch.cuda.is_available()

    gen_batch = args.per_device_train_batch_size * args.gradient_accumulation_steps
    if gen_batch % args.num_generations:
        raise ConfigError(
            f"per_device_train_batch_size * gradient_accumulation_steps ({gen_batch}) must be a multiple of "
            f"num_generations ({args.num_generations}): each batch holds whole groups of signals per item"
        )

    env = env if env is not None else make_env(args)
    dataset = advisor_dataset(env, template=args.prompt_template)
    reward_fn = make_reward_fn(env)
    tokenizer = load_tokenizer(args)
    model = build_policy(args, tokenizer, out_dir)

    config = Config(
        output_dir=out_dir,
        run_name=os.path.basename(os.path.normpath(out_dir)),
        seed=args.seed,
        use_cpu=not use_cuda,
        bf16=args.bf16,
        learning_rate=args.learning_rate,
        max_steps=args.total_steps,
        per_device_train_batch_size=args.per_device_train_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length,
        temperature=args.temperature,
        beta=args.beta,
        activation_checkpointing=args.activation_checkpointing,  # transformers 5 name (gradient_checkpointing is deprecated)
        logging_steps=args.logging_steps,
        save_strategy="steps",
        save_steps=args.save_steps,
        save_total_limit=args.save_total_limit,
        report_to=["tensorboard"] if args.track else "none",
        log_completions=args.log_completions,
        dataloader_num_workers=0,
        disable_dropout=True,  # dropout would make the training log-probs differ from the sampling ones
    )
    callbacks = [CleanRLScalars(logging_dir, reward_fn.__name__, dataclasses.asdict(args))] if args.track else []
    trainer = Trainer(
        model=model,
        reward_funcs=reward_fn,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    # transformers 5 dropped TrainingArguments.logging_dir: point TRL's TensorBoard writer at ours.
    from transformers.integrations import TensorBoardCallback

    for cb in trainer.callback_handler.callbacks:
        if isinstance(cb, TensorBoardCallback):
            cb.logging_dir = logging_dir
    trainer.bpa_reward_fn = reward_fn
    trainer.bpa_env = env
    trainer.bpa_logging_dir = logging_dir
    return trainer


def resume_target(args: Args) -> Any:
    """``resume_from_checkpoint`` for ``trainer.train``: None, a checkpoint path, or True (latest)."""
    r = (args.resume or "").strip()
    if r.lower() in ("", "no", "false", "none"):
        return None
    out_dir = run_dir(args)
    last = get_last_checkpoint(out_dir) if os.path.isdir(out_dir) else None
    if r.lower() == "auto":
        return last
    if r.lower() in ("latest", "true", "yes"):
        if last is None:
            raise ConfigError(f"--resume {r}: no checkpoint-* folder in {out_dir!r}; run without --resume first")
        return last
    if not os.path.isdir(r):
        raise ConfigError(f"--resume {r!r} is not a checkpoint folder")
    return r


def main(argv: Optional[list[str]] = None):
    args = parse_args(argv)
    trainer = make_trainer(args)
    resume = resume_target(args)
    if resume:
        print(f"resuming from {resume}")
    trainer.train(resume_from_checkpoint=resume)
    final_dir = os.path.join(run_dir(args), "final")
    trainer.save_model(final_dir)
    trainer.processing_class.save_pretrained(final_dir)
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    if rewards:
        k = max(1, len(rewards) // 10)
        print(f"mean reward: first {k} logs {np.mean(rewards[:k]):.3f}, last {k} logs {np.mean(rewards[-k:]):.3f}")
    print(f"policy saved to {final_dir}; TensorBoard: tensorboard --logdir {trainer.bpa_logging_dir}")
    return trainer


if __name__ == "__main__":
    main(sys.argv[1:])
