"""PPO for a language-model Advisor on bpa_gym's free-text persuasion envs (CleanRL style, one file).

The Advisor is a causal LM (GPT-2 class).  It reads an information item (a
GSM8K question) through a short prompt, ``"Question: {question}\\nAdvice:"``,
and samples a free-text *signal*.  A black-box Receiver LLM answers the item
with that signal in its context; the reward is the Receiver's correctness
(Bayesian Persuasion Alignment, Bai et al. 2024, arXiv:2405.18718).

Why not ``trl.PPOTrainer``?
    TRL removed ``PPOTrainer`` (huggingface/trl#7020, TRL >= 1.13).  The last
    one (``trl.experimental``, TRL <= 1.12) accepted only an ``nn.Module``
    reward model that scores token ids; it could not take an environment's
    reward, which users ran into exactly (huggingface/trl#2518, #2576).  Our
    reward comes from a black-box Receiver stepped through a Gymnasium vector
    env (a local model, a server, or a test double), so this file writes the PPO loop on plain torch and uses the
    building blocks TRL still ships: ``selective_log_softmax`` and
    ``entropy_from_logits`` from ``trl.trainer.utils`` (a local fallback is used
    only when that import fails; :data:`TRL_BLOCKS` says which).

What one iteration does:
    1. **Rollout.**  The env is a vector env of ``batch_size`` sub-envs
       (:class:`bpa_gym.envs.llm_vector.BayesPersuasionLLMVectorEnv`, one
       Receiver batch per step; every step ends all its one-step episodes and
       returns the next items).  Its observations are the questions: render
       the Advisor prompts, left-pad, and sample one signal per observation
       with ``model.generate`` (temperature only, at most
       ``max_signal_tokens`` tokens, stopping at EOS or, by default, at a
       token containing a newline).  A signal longer than the env's
       ``max_signal_length`` characters is cut *in tokens*: its last tokens
       are dropped from the signal and from the loss (see "Credit").
       ``venv.step(signals)`` plays them all with **one** batched Receiver
       call; the rewards are the step's, the plays' details (signal, response,
       parse status, ...) are in ``info["final_info"]``, and the returned
       observations are the next iteration's items.  Wrappers of the vector
       env (e.g. :class:`bpa_gym.wrappers.VectorRegretWrapper` with an
       ``oracle=``, since free-text signals have no built-in oracle) see every
       play.  A Receiver failure raises; it is never scored 0.
    2. **Scoring pass** (no grad): per-token log-probs of the sampled tokens
       under the policy and the frozen reference, and the value head's values.
    3. **Rewards.**  Per-token KL penalty ``-beta * (logp - logp_ref)``; the
       Receiver's reward is added at the signal's last token.  ``beta`` comes
       from the adaptive KL controller of Ziegler et al. 2019
       (arXiv:1909.08593): ``beta *= 1 + clip(KL/target - 1, -0.2, 0.2) * n / horizon``.
    4. **GAE** (gamma = 1 by default, lambda configurable) over the signal's
       tokens; advantages are whitened over the valid tokens.
    5. **PPO epochs** over shuffled minibatches (optionally split into
       micro-batches with gradient accumulation): clipped surrogate, value
       loss (optionally clipped), entropy bonus, gradient clipping.

On-policy sampling:
    PPO's ratios ``pi_new(a) / pi_old(a)`` and its KL penalty need the
    log-prob of each sampled token under the very distribution it was sampled
    from.  Signals are therefore sampled from the full softmax at
    ``temperature`` and scored with the same tempered softmax; every other
    logits processor of ``generate`` is switched off explicitly (``top_k=0``,
    ``top_p=1.0``, also overriding a pretrained model's own
    ``generation_config``).  There are no ``--top-k/--top-p`` flags: a
    truncated distribution's support moves with the logits, so a token
    sampled by the old policy can lie outside the new policy's or the
    reference's support (ratio 0, infinite KL), and near-ties at the cut
    make the rollout's support differ from the scoring pass's.  Lower the
    temperature for more conservative signals.

Credit:
    The tokens credited by the loss are exactly the tokens whose text the
    Receiver saw: the signal is the decoded text of the kept tokens (cut at
    the first newline inside the final stop token, and stripped), and
    ``response_mask`` marks those kept tokens only.

Memory: logits are only computed for the signal's positions (never for the
prompt), in chunks of ``logprob_chunk_size`` tokens, each chunk under
activation checkpointing when gradients are needed, so at most one
``[micro_batch, chunk, vocab]`` logits tile is alive at once (GPT-2 small at
batch 256 x 264 tokens would need ~13 GB for fp32 full-vocab logits).  Chunks
are up-cast to fp32 before the log-softmax, so ``--bf16`` (autocast) keeps
exact-enough ratios.

Policy specs (``--policy``):
    * a hub id or a local folder with weights (``gpt2``, ``./my-advisor``);
    * ``random:<config folder>``: random init from that folder's
      ``config.json`` (e.g. ``random:../shared/models/gpt2`` for GPT-2 small);
    * ``random:tiny``: a 2-layer, 64-wide GPT-2 for CPU tests.
    The tokenizer is ``--tokenizer`` (default: the policy folder).

Checkpoints: every ``--save-every`` iterations ``<save-dir>/checkpoint.pt`` is
written atomically (:func:`bpa_gym.common.atomic_path`) with the policy and
value head, the optimizer, the KL controller, the python / numpy / torch (CPU
and CUDA) RNG states, the vector env's item streams
(:meth:`~bpa_gym.envs.llm_vector.BayesPersuasionLLMVectorEnv.get_item_state`:
each sub-env's RNG, item permutation, cursor and current item) and the
iteration; the frozen
reference is written once to ``<save-dir>/ref.pt``.  ``--resume`` continues a
killed run exactly where its last checkpoint left it.  Checkpoints hold only
tensors and plain Python types (RNG states are converted to lists and ints)
and are loaded with ``torch.load(weights_only=True)``: a file holding any
other object (a pickled payload) is refused with a :class:`bpa_gym.ConfigError`
and nothing in it runs.

Example (offline, CPU, a few minutes)::

    python agents/ppo_text.py --policy random:tiny --tokenizer ../shared/models/gpt2 \\
        --data-dir ../shared/data --receiver smollm2 --receiver-max-new-tokens 64 \\
        --batch-size 8 --num-iterations 4 --max-signal-tokens 16
    tensorboard --logdir runs/ppo_text
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.utils.checkpoint

try:  # TRL >= 1.x keeps these two memory-aware helpers after dropping PPOTrainer.
    from trl.trainer.utils import entropy_from_logits, selective_log_softmax

    TRL_BLOCKS = "trl.trainer.utils"
except ImportError:  # pragma: no cover - only without TRL
    TRL_BLOCKS = "local fallback (trl.trainer.utils not importable)"

    def selective_log_softmax(logits: torch.Tensor, index: torch.Tensor, **_: Any) -> torch.Tensor:
        """log_softmax(logits)[index], row by row to bound peak memory."""
        return torch.stack([torch.log_softmax(row, -1).gather(-1, idx.unsqueeze(-1)).squeeze(-1)
                            for row, idx in zip(logits, index)])

    def entropy_from_logits(logits: torch.Tensor, chunk_size: int = 128) -> torch.Tensor:
        """Shannon entropy (nats) of each row of ``logits``."""
        flat = logits.reshape(-1, logits.shape[-1])
        out = [-(torch.exp(lp) * lp).sum(-1) for lp in (torch.log_softmax(c, -1) for c in flat.split(chunk_size))]
        return torch.cat(out).reshape(logits.shape[:-1])

import gymnasium as gym

import bpa_gym
from bpa_gym import ConfigError
from bpa_gym.common import atomic_path, resolve_device, seed_everything
from bpa_gym.envs.llm_vector import BayesPersuasionLLMVectorEnv


# ----------------------------------------------------------------------------- arguments
@dataclass
class Args:
    """Every setting of a run; each field is one ``--kebab-case`` flag of the command line."""

    # --- experiment
    exp_name: str = "ppo_text"
    """Name of this experiment (names the run folder)."""
    seed: int = 1
    """Seed of python, numpy, torch and the env's item streams (sub-env i: seed + i)."""
    torch_deterministic: bool = True
    """Set torch.backends.cudnn.deterministic."""
    device: str = "auto"
    """'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:N'."""
    bf16: bool = False
    """bfloat16 autocast for the Advisor's forward passes."""
    save_dir: str | None = None
    """Run folder for TensorBoard events and checkpoints (default runs/<exp_name>__<seed>)."""
    save_every: int = 10
    """Write a checkpoint every N iterations (0: only at the end)."""
    resume: bool = False
    """Continue from <save_dir>/checkpoint.pt when it exists."""
    progress: bool = True
    """Show a tqdm progress bar."""
    # --- environment / Receiver
    env_id: str = "BayesPersuasion-GSM8K-v0"
    """A bpa_gym env id that supports signals='text'."""
    data_dir: str | None = None
    """Dataset folder (default $BPA_DATA_DIR, then the hub)."""
    split: str = "train"
    """Dataset split the items are drawn from."""
    subset_size: int | None = None
    """Use only the first N items of the split."""
    receiver: str = "smollm2"
    """Receiver spec: 'smollm2', 'hf:<id-or-path>', 'openai:<model>@<base_url>'."""
    receiver_max_new_tokens: int = 256
    """Max tokens the Receiver generates per answer."""
    receiver_device: str = "auto"
    """Device of a local Receiver (smollm2/hf specs)."""
    receiver_batch_size: int = 16
    """Batch size of a local Receiver's generate."""
    # --- policy
    policy: str = "gpt2"
    """Hub id, local folder with weights, or random:<config folder|'tiny'> for a random init."""
    tokenizer: str | None = None
    """Tokenizer id/folder (default: the policy's)."""
    prompt_template: str = "Question: {question}\nAdvice:"
    """Advisor prompt; must contain {question}."""
    max_prompt_tokens: int = 256
    """Keep at most the last N prompt tokens."""
    # --- signal sampling
    max_signal_tokens: int = 32
    """Max tokens per signal."""
    temperature: float = 1.0
    """Sampling temperature (> 0).  Signals are sampled from the tempered full softmax and scored with the
    same distribution (there is no top-k/top-p: see the module docstring, "On-policy sampling")."""
    stop_at_newline: bool = True
    """End a signal at the first token containing a newline."""
    # --- PPO
    num_iterations: int = 100
    """PPO iterations (one rollout batch each)."""
    batch_size: int = 64
    """Signals per iteration = sub-envs of the vector env (one Receiver batch call per step)."""
    num_minibatches: int = 4
    """Minibatches per PPO epoch."""
    micro_batch_size: int | None = None
    """Rows per forward/backward (gradient accumulation inside a minibatch; default: the minibatch)."""
    forward_batch_size: int = 32
    """Rows per no-grad scoring forward in the rollout."""
    logprob_chunk_size: int = 32
    """Signal tokens per logits chunk."""
    update_epochs: int = 4
    """PPO epochs per iteration."""
    learning_rate: float = 1e-5
    """Adam learning rate."""
    anneal_lr: bool = False
    """Linearly anneal the learning rate to 0."""
    gamma: float = 1.0
    """Discount over signal tokens."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    norm_adv: bool = True
    """Whiten advantages over the batch's valid tokens."""
    clip_coef: float = 0.2
    """Surrogate clipping coefficient."""
    clip_vloss: bool = True
    """Clip the value loss around the rollout values."""
    vf_clip_coef: float = 0.2
    """Value clipping range."""
    vf_coef: float = 0.1
    """Value loss coefficient."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    init_kl_coef: float = 0.05
    """Initial per-token KL penalty coefficient (beta)."""
    adaptive_kl: bool = True
    """Adapt beta towards target_kl (Ziegler et al. 2019)."""
    target_kl: float = 6.0
    """Target KL per signal (nats, summed over tokens)."""
    kl_horizon: int = 10000
    """Horizon of the adaptive KL controller (samples)."""

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    def resolved_save_dir(self) -> Path:
        return Path(self.save_dir) if self.save_dir else Path("runs") / f"{self.exp_name}__{self.seed}"

    def validate(self) -> None:
        if "{question}" not in self.prompt_template:
            raise ConfigError("prompt_template must contain {question}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0 for PPO sampling, got {self.temperature}")
        if self.batch_size < 1 or self.num_minibatches < 1 or self.batch_size % self.num_minibatches:
            raise ConfigError(f"batch_size ({self.batch_size}) must be a positive multiple of "
                              f"num_minibatches ({self.num_minibatches})")
        micro = self.micro_batch_size or self.minibatch_size
        if micro < 1 or self.minibatch_size % micro:
            raise ConfigError(f"micro_batch_size ({micro}) must divide the minibatch size ({self.minibatch_size})")


def parse_args(argv: Sequence[str] | None = None) -> Args:
    """:class:`Args` from the command line with ``tyro`` (``--kebab-case`` flags; ``--help`` shows the
    fields' docstrings; booleans are ``--flag/--no-flag``; optional values take ``None``)."""
    import tyro

    return tyro.cli(Args, args=argv, description=__doc__.split("\n")[0])


# ----------------------------------------------------------------------------- policy
TINY_GPT2 = dict(n_layer=2, n_head=2, n_embd=64, n_positions=512)


class ActorCritic(nn.Module):
    """A causal LM (the actor) with a scalar value head on its last hidden state (the critic)."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm
        hidden = lm.config.get_text_config().hidden_size
        self.value_head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def values(self, hidden: torch.Tensor) -> torch.Tensor:
        with torch.autocast(hidden.device.type, enabled=False):
            return self.value_head(hidden.float()).squeeze(-1)


def backbone_hidden(lm: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``lm.base_model``'s last hidden state for left-padded (and right-masked) rows."""
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = lm.base_model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                        use_cache=False)
    return out.last_hidden_state


def load_tokenizer(name: str) -> Any:
    """``AutoTokenizer`` set up for left-padded generation (pad = EOS when it has none)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name)
    if len(tok) == 0:
        raise ConfigError(f"tokenizer {name!r} is empty")
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def make_policy(policy: str, tokenizer: str | None = None, *, seed: int = 0,
                device: str | torch.device = "cpu") -> tuple[ActorCritic, Any]:
    """Build the Advisor (LM + value head) and its tokenizer.

    Args:
        policy: Hub id / local folder with weights, ``random:<config folder>``
            or ``random:tiny``.
        tokenizer: Tokenizer id/folder; default: the policy's folder (required
            for ``random:tiny``).
        seed: Seeds the random init, so the same spec and seed give the same
            weights.
        device: Where the model goes.

    Returns:
        ``(actor_critic, tokenizer)``; dropout is off (the model is in eval
        mode, as PPO's ratios need a deterministic policy).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, GPT2Config

    random_init = policy.startswith("random:")
    source = policy.split(":", 1)[1] if random_init else policy
    tok_name = tokenizer or (None if source == "tiny" else source)
    if tok_name is None:
        raise ConfigError("policy 'random:tiny' needs --tokenizer (e.g. ../shared/models/gpt2)")
    tok = load_tokenizer(tok_name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if random_init:
            if source == "tiny":
                config = GPT2Config(vocab_size=len(tok), bos_token_id=tok.eos_token_id,
                                    eos_token_id=tok.eos_token_id, **TINY_GPT2)
            else:
                config = AutoConfig.from_pretrained(source)
            lm = AutoModelForCausalLM.from_config(config)
        else:
            lm = AutoModelForCausalLM.from_pretrained(source)
        ac = ActorCritic(lm)
    if ac.lm.get_input_embeddings().num_embeddings < len(tok):
        raise ConfigError(f"tokenizer {tok_name!r} has {len(tok)} tokens but the model only "
                          f"{ac.lm.get_input_embeddings().num_embeddings} embeddings")
    return ac.to(device).eval(), tok


def make_reference(actor_critic: ActorCritic) -> nn.Module:
    """A frozen copy of the Advisor's LM: the reference of the KL penalty."""
    ref = copy.deepcopy(actor_critic.lm).eval()
    ref.requires_grad_(False)
    return ref


# ----------------------------------------------------------------------------- log-probs
def token_logprobs(lm: nn.Module, hidden: torch.Tensor, tokens: torch.Tensor, *, temperature: float = 1.0,
                   chunk_size: int = 32, with_entropy: bool = False, entropy_grad: bool = False,
                   checkpoint: bool | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs of ``tokens`` given the hidden states that predict them, in chunks of positions.

    Args:
        lm: The LM whose output head (``get_output_embeddings()``) maps hidden
            states to logits.
        hidden: ``[B, T, H]``; ``hidden[:, t]`` predicts ``tokens[:, t]``.
        tokens: ``[B, T]`` token ids.
        temperature: Logits are divided by it (the sampling temperature).
        chunk_size: Positions per logits tile ``[B, chunk, V]``.
        with_entropy: Also return the per-position entropy.
        entropy_grad: Let gradients flow through the entropy (only needed
            for an entropy bonus; otherwise it is computed on detached logits).
        checkpoint: Recompute each tile in backward instead of storing it
            (default: when gradients are enabled), so training memory is one
            tile, not ``[B, T, V]``.

    Returns:
        ``(logprobs [B, T], entropy [B, T] or None)``, float32.
    """
    head = lm.get_output_embeddings()
    if checkpoint is None:
        checkpoint = torch.is_grad_enabled() and hidden.requires_grad

    def tile(h: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = head(h).float()
        if temperature != 1.0:
            logits = logits / temperature
        lp = selective_log_softmax(logits, idx)
        if with_entropy:
            ent = entropy_from_logits(logits if entropy_grad else logits.detach())
        else:
            ent = lp.new_zeros(())
        return lp, ent

    lps, ents = [], []
    for start in range(0, tokens.shape[1], chunk_size):
        h, idx = hidden[:, start:start + chunk_size], tokens[:, start:start + chunk_size]
        if checkpoint:
            lp, ent = torch.utils.checkpoint.checkpoint(tile, h, idx, use_reentrant=False)
        else:
            lp, ent = tile(h, idx)
        lps.append(lp)
        ents.append(ent)
    return torch.cat(lps, 1), (torch.cat(ents, 1) if with_entropy else None)


def sequence_forward(actor_critic: ActorCritic, lm: nn.Module, query: torch.Tensor, query_mask: torch.Tensor,
                     response: torch.Tensor, response_mask: torch.Tensor, *, temperature: float, chunk_size: int,
                     with_values: bool, with_entropy: bool = False, entropy_grad: bool = False):
    """Per-token log-probs (and values, entropy) of ``response`` after ``query`` under ``lm``."""
    q = query.shape[1]
    ids = torch.cat([query, response], 1)
    mask = torch.cat([query_mask, response_mask], 1)
    hidden = backbone_hidden(lm, ids, mask)[:, q - 1:-1]  # hidden[:, t] predicts response[:, t]
    logprobs, entropy = token_logprobs(lm, hidden, response, temperature=temperature, chunk_size=chunk_size,
                                       with_entropy=with_entropy, entropy_grad=entropy_grad)
    values = actor_critic.values(hidden) if with_values else None
    return logprobs, values, entropy


# ----------------------------------------------------------------------------- KL controller
class KLController:
    """Per-token KL coefficient beta; adaptive (Ziegler et al. 2019) or fixed.

    ``update(kl, n)`` with the batch's mean KL per signal and ``n`` samples:
    ``beta *= 1 + clip(kl / target - 1, -0.2, 0.2) * n / horizon``.
    """

    def __init__(self, init_kl_coef: float, target: float | None = None, horizon: int = 10000) -> None:
        if target is not None and (target <= 0 or horizon <= 0):
            raise ConfigError("target KL and horizon must be > 0")
        self.value = float(init_kl_coef)
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> float:
        if self.target is not None:
            error = float(np.clip(current_kl / self.target - 1.0, -0.2, 0.2))
            self.value *= 1.0 + error * n_steps / self.horizon
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value, self.target, self.horizon = state["value"], state["target"], state["horizon"]


# ----------------------------------------------------------------------------- rollout
def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def stop_token_ids(tokenizer: Any, stop_at_newline: bool = True) -> list[int]:
    """EOS plus, with ``stop_at_newline``, every token whose text contains a newline."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    if stop_at_newline:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        ids |= {i for i, t in enumerate(texts) if "\n" in t}
    if not ids:
        raise ConfigError("the tokenizer has no EOS token and stop_at_newline is off: signals could not end early")
    return sorted(ids)


def signal_text(tokenizer: Any, token_ids: Sequence[int], stop_at_newline: bool) -> str:
    """The signal the Receiver sees for these Advisor tokens: decoded, cut at the first newline
    (with ``stop_at_newline``), stripped."""
    text = tokenizer.decode(list(token_ids), skip_special_tokens=True)
    if stop_at_newline:
        text = text.split("\n", 1)[0]
    return text.strip()


def generate_signals(lm: nn.Module, tokenizer: Any, prompts: Sequence[str], args: Args,
                     stop_ids: Sequence[int], device: torch.device,
                     max_chars: int | None = None) -> dict[str, Any]:
    """Sample one signal per prompt with ``lm.generate`` (left-padded batch).

    Sampling uses the tempered full softmax only (see "On-policy sampling" in
    the module docstring).  A signal longer than ``max_chars`` characters is
    cut in tokens: only the longest prefix of tokens whose :func:`signal_text`
    fits is kept (and at least one token, whose text is then cut to
    ``max_chars``), so the credited tokens are the ones the Receiver sees.

    Returns:
        dict with ``query`` / ``query_mask`` ``[B, Q]``, ``response`` /
        ``response_mask`` ``[B, R]`` (the mask keeps the tokens up to and
        including the first stop token, minus any cut by ``max_chars``) and
        ``signals`` (:func:`signal_text` of exactly the kept tokens).
    """
    from transformers import GenerationConfig

    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"][-args.max_prompt_tokens:] for p in prompts]
    padded = tokenizer.pad({"input_ids": encoded}, padding=True, padding_side="left", return_tensors="pt")
    query, query_mask = padded["input_ids"].to(device), padded["attention_mask"].to(device)
    config = GenerationConfig(
        do_sample=True, temperature=args.temperature, top_k=0, top_p=1.0,  # the tempered full softmax only
        max_new_tokens=args.max_signal_tokens, eos_token_id=list(stop_ids), pad_token_id=tokenizer.pad_token_id,
    )
    with torch.inference_mode(), _autocast(device, args.bf16):
        out = lm.generate(input_ids=query, attention_mask=query_mask, generation_config=config)
    response = out[:, query.shape[1]:].clone()
    is_stop = torch.isin(response, torch.tensor(list(stop_ids), device=device))
    # length = index of the first stop token + 1 (or the whole response)
    first = torch.where(is_stop.any(1), is_stop.float().argmax(1) + 1, torch.full_like(is_stop[:, 0], response.shape[1], dtype=torch.long))
    signals, lengths = [], []
    for row, n in zip(response.tolist(), first.tolist()):
        text = signal_text(tokenizer, row[:n], args.stop_at_newline)
        while max_chars is not None and len(text) > max_chars and n > 1:  # cut in tokens, not characters
            n -= 1
            text = signal_text(tokenizer, row[:n], args.stop_at_newline)
        signals.append(text[:max_chars] if max_chars is not None else text)
        lengths.append(n)
    kept = torch.tensor(lengths, device=device)
    response_mask = (torch.arange(response.shape[1], device=device)[None] < kept[:, None]).long()
    response = response.masked_fill(response_mask == 0, tokenizer.pad_token_id)
    return {"query": query, "query_mask": query_mask, "response": response, "response_mask": response_mask,
            "signals": signals}


def make_vector_env(env: gym.Env | gym.vector.VectorEnv, num_envs: int) -> gym.vector.VectorEnv:
    """The vector env PPO steps: ``env`` itself if it is a vector env of ``num_envs`` sub-envs, else a
    ``num_envs``-env text view of the single LLM env ``env``
    (:meth:`~bpa_gym.envs.llm_vector.BayesPersuasionLLMVectorEnv.from_env`: same Receiver and items).

    The view takes any string of at most the env's ``max_signal_length``
    characters as an action (what the Advisor writes, unfiltered by the
    single env's printable charset).
    """
    if isinstance(env, gym.vector.VectorEnv):
        if env.num_envs != num_envs:
            raise ConfigError(f"the vector env has num_envs={env.num_envs}; PPO steps batch_size={num_envs} "
                              "signals at once: make it with num_envs=batch_size")
        if getattr(env.unwrapped, "signal_mode", None) != "text":
            raise ConfigError("the vector env must take free-text signals (signals='text') for an LM Advisor")
        return env
    if getattr(env.unwrapped, "signal_mode", None) != "text":
        raise ConfigError("the env must be made with signals='text' for an LM Advisor")
    max_chars = getattr(env.action_space, "max_length", None)
    return BayesPersuasionLLMVectorEnv.from_env(env, num_envs, signals="text", max_signal_length=max_chars)


def rollout(venv: gym.vector.VectorEnv, observations: Sequence[str], actor_critic: ActorCritic, ref_lm: nn.Module,
            tokenizer: Any, args: Args, stop_ids: Sequence[int],
            device: torch.device) -> tuple[dict[str, Any], tuple[str, ...]]:
    """One PPO batch: one signal per observation, ONE vector-env step (one batched Receiver call), scoring.

    Args:
        venv: The vector env (:func:`make_vector_env`), ``batch_size`` sub-envs.
        observations: Its current observations (the questions), from
            ``venv.reset()`` or the previous rollout.

    Returns:
        ``(batch, next_observations)``.  The batch holds tensors on
        ``device`` (query, masks, response, logprobs, ref_logprobs, values,
        scores = the step's rewards), ``signals``, ``infos`` (one step-info
        dict per play, from ``info["final_info"]``) and ``timing`` (seconds:
        ``generate``, ``receiver``, ``score``); ``next_observations`` are the
        next items' questions.

    Raises:
        ReceiverError: The Receiver failed on any prompt (never scored 0).
    """
    if len(observations) != args.batch_size:
        raise ConfigError(f"rollout got {len(observations)} observations for batch_size={args.batch_size}")
    prompts = [args.prompt_template.format(question=q) for q in observations]
    max_chars = getattr(venv.single_action_space, "max_length", None)

    sync(device)
    t0 = time.perf_counter()
    batch = generate_signals(actor_critic.lm, tokenizer, prompts, args, stop_ids, device, max_chars=max_chars)
    signals = batch.pop("signals")
    sync(device)
    t1 = time.perf_counter()
    # One vector step = one batched Receiver call; a failure raises ReceiverError (PPO never scores it 0).
    next_observations, rewards, _terminated, _truncated, info = venv.step(signals)
    t2 = time.perf_counter()
    played = info["final_info"]  # SAME_STEP autoreset: the plays' step infos (the top level is the next items')
    infos = [{key: played[key][i] for key in played if not key.startswith("_")} for i in range(len(signals))]

    logprobs, ref_logprobs, values = [], [], []
    with torch.no_grad(), _autocast(device, args.bf16):
        for s in range(0, args.batch_size, args.forward_batch_size):
            sl = slice(s, s + args.forward_batch_size)
            parts = (batch["query"][sl], batch["query_mask"][sl], batch["response"][sl], batch["response_mask"][sl])
            lp, v, _ = sequence_forward(actor_critic, actor_critic.lm, *parts, temperature=args.temperature,
                                        chunk_size=args.logprob_chunk_size, with_values=True)
            rlp, _, _ = sequence_forward(actor_critic, ref_lm, *parts, temperature=args.temperature,
                                         chunk_size=args.logprob_chunk_size, with_values=False)
            logprobs.append(lp)
            ref_logprobs.append(rlp)
            values.append(v)
    sync(device)
    t3 = time.perf_counter()
    mask = batch["response_mask"].float()
    batch.update(
        signals=signals, infos=infos,
        logprobs=torch.cat(logprobs) * mask, ref_logprobs=torch.cat(ref_logprobs) * mask,
        values=torch.cat(values) * mask,
        scores=torch.as_tensor(np.asarray(rewards), dtype=torch.float32, device=device),
        timing={"generate": t1 - t0, "receiver": t2 - t1, "score": t3 - t2},
    )
    return batch, tuple(next_observations)


# ----------------------------------------------------------------------------- PPO update
def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * mask


def compute_advantages(batch: dict[str, Any], kl_coef: float, gamma: float, lam: float,
                       norm_adv: bool) -> dict[str, torch.Tensor]:
    """Per-token rewards (KL penalty + Receiver reward at the last token), GAE advantages and returns."""
    mask = batch["response_mask"].float()
    kl = (batch["logprobs"] - batch["ref_logprobs"]) * mask
    rewards = -kl_coef * kl
    last = mask.sum(1).long() - 1
    rows = torch.arange(mask.shape[0], device=mask.device)
    rewards[rows, last] += batch["scores"]
    values = batch["values"] * mask
    adv = torch.zeros_like(rewards)
    lastgaelam = torch.zeros_like(rewards[:, 0])
    T = rewards.shape[1]
    for t in reversed(range(T)):
        next_values = values[:, t + 1] if t + 1 < T else torch.zeros_like(values[:, 0])
        delta = rewards[:, t] + gamma * next_values - values[:, t]
        lastgaelam = delta + gamma * lam * lastgaelam
        adv[:, t] = lastgaelam
    adv = adv * mask
    returns = adv + values
    if norm_adv:
        adv = masked_whiten(adv, mask)
    return {"advantages": adv, "returns": returns, "rewards": rewards,
            "kl": kl.sum(1).mean(), "non_score_reward": rewards.sum(1).mean() - batch["scores"].mean()}


def ppo_loss(new_logprobs: torch.Tensor, new_values: torch.Tensor, entropy: torch.Tensor,
             old_logprobs: torch.Tensor, old_values: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor,
             mask: torch.Tensor, args: Args) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's loss on one micro-batch of tokens (all ``[B, T]``; ``mask`` marks the credited tokens).

    ``loss = policy + vf_coef * value - ent_coef * entropy``, each a mean over
    the credited tokens: the clipped surrogate
    ``max(-A r, -A clip(r, 1 - clip_coef, 1 + clip_coef))`` with
    ``r = exp(new_logprob - old_logprob)``; the value loss
    ``0.5 (V - R)^2``, with ``clip_vloss`` ``0.5 max((V - R)^2, (V_clip - R)^2)``
    where ``V_clip = V_old + clip(V - V_old, -vf_clip_coef, vf_clip_coef)``.

    Returns:
        ``(loss, parts)``; ``parts`` holds the detached ``policy``, ``value``,
        ``entropy``, ``approx_kl`` (``mean((r - 1) - log r)``), ``clipfrac``
        and ``ratio`` (mean ``r``).
    """
    logratio = (new_logprobs - old_logprobs) * mask
    ratio = logratio.exp()
    a = advantages
    pg_loss = masked_mean(torch.max(-a * ratio, -a * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)), mask)
    v_loss_unclipped = (new_values - returns) ** 2
    if args.clip_vloss:
        v_clipped = old_values + (new_values - old_values).clamp(-args.vf_clip_coef, args.vf_clip_coef)
        v_loss = 0.5 * masked_mean(torch.max(v_loss_unclipped, (v_clipped - returns) ** 2), mask)
    else:
        v_loss = 0.5 * masked_mean(v_loss_unclipped, mask)
    ent = masked_mean(entropy, mask)
    loss = pg_loss + args.vf_coef * v_loss - args.ent_coef * ent
    with torch.no_grad():
        parts = {"policy": pg_loss.detach(), "value": v_loss.detach(), "entropy": ent.detach(),
                 "approx_kl": masked_mean((ratio - 1) - logratio, mask),
                 "clipfrac": masked_mean(((ratio - 1).abs() > args.clip_coef).to(ratio.dtype), mask),
                 "ratio": masked_mean(ratio, mask)}
    return loss, parts


def ppo_update(actor_critic: ActorCritic, optimizer: torch.optim.Optimizer, batch: dict[str, Any], args: Args,
               kl_coef: float, device: torch.device) -> dict[str, float]:
    """Rewards + GAE for ``batch``, then ``update_epochs`` epochs of clipped PPO over its minibatches."""
    adv = compute_advantages(batch, kl_coef, args.gamma, args.gae_lambda, args.norm_adv)
    B = args.batch_size
    mb = args.minibatch_size
    micro = args.micro_batch_size or mb
    stats: dict[str, list[float]] = {k: [] for k in ("policy", "value", "entropy", "approx_kl", "clipfrac", "ratio")}
    for _epoch in range(args.update_epochs):
        perm = torch.randperm(B).to(device)
        for start in range(0, B, mb):
            optimizer.zero_grad(set_to_none=True)
            for mstart in range(start, start + mb, micro):
                idx = perm[mstart:mstart + micro]
                mask = batch["response_mask"][idx].float()
                with _autocast(device, args.bf16):
                    new_lp, new_v, entropy = sequence_forward(
                        actor_critic, actor_critic.lm, batch["query"][idx], batch["query_mask"][idx],
                        batch["response"][idx], batch["response_mask"][idx], temperature=args.temperature,
                        chunk_size=args.logprob_chunk_size, with_values=True, with_entropy=True,
                        entropy_grad=args.ent_coef != 0)
                loss, parts = ppo_loss(new_lp, new_v, entropy, batch["logprobs"][idx], batch["values"][idx],
                                       adv["advantages"][idx], adv["returns"][idx], mask, args)
                (loss * (len(idx) / mb)).backward()
                for k, v in parts.items():
                    stats[k].append(v.item())
            nn.utils.clip_grad_norm_(actor_critic.parameters(), args.max_grad_norm)
            optimizer.step()
    out = {k: float(np.mean(v)) for k, v in stats.items()}
    out.update(kl=adv["kl"].item(), non_score_reward=adv["non_score_reward"].item())
    return out


# ----------------------------------------------------------------------------- checkpoints
def rng_state() -> dict[str, Any]:
    """The python / numpy / torch (CPU, CUDA) global RNG states as tensors and plain Python types only
    (lists, ints, floats, strings), so that ``torch.load(weights_only=True)`` can read them back."""
    version, internal, gauss_next = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "numpy": {"bit_generator": np_state["bit_generator"], "key": np_state["state"]["key"].tolist(),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states :func:`rng_state` returned."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    npy = state["numpy"]
    np.random.set_state({"bit_generator": npy["bit_generator"],
                         "state": {"key": np.asarray(npy["key"], dtype=np.uint32), "pos": npy["pos"]},
                         "has_gauss": npy["has_gauss"], "gauss": npy["gauss"]})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(save_dir: Path, iteration: int, actor_critic: ActorCritic, ref_lm: nn.Module,
                    optimizer: torch.optim.Optimizer, kl_ctl: KLController, venv: gym.vector.VectorEnv,
                    args: Args) -> Path:
    """Write ``checkpoint.pt`` atomically (and ``ref.pt`` once); only tensors and plain Python types."""
    ref_path = save_dir / "ref.pt"
    if not ref_path.exists():
        with atomic_path(ref_path) as tmp:
            torch.save(ref_lm.state_dict(), tmp)
    path = save_dir / "checkpoint.pt"
    with atomic_path(path) as tmp:
        torch.save({
            "iteration": iteration,
            "policy": actor_critic.state_dict(),
            "optimizer": optimizer.state_dict(),
            "kl_controller": kl_ctl.state_dict(),
            "rng": rng_state(),
            "env_items": venv.unwrapped.get_item_state(),  # each sub-env's RNG, permutation, cursor, item
            "args": dataclasses.asdict(args),
        }, tmp)
    return path


def safe_load(path: Path, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain Python types only.

    Raises:
        ConfigError: The file holds anything else (e.g. a pickled object,
            whose code is never run) or cannot be read.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\. |\n\n|$)", str(exc), re.S)
        reason = " ".join((found.group(1) if found else str(exc).splitlines()[0]).split())
        raise ConfigError(
            f"refusing to load checkpoint {path}: it holds something other than tensors and plain Python types "
            f"({reason}). ppo_text.py never writes such a file, so it is damaged or crafted; nothing in it was "
            f"run. Delete it, or resume from a checkpoint you wrote.") from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise ConfigError(f"cannot read checkpoint {path}: {exc}. Delete it to start afresh.") from exc


def load_checkpoint(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read ``checkpoint.pt`` with :func:`safe_load` and check it has every part a resume needs.

    Raises:
        ConfigError: The file holds anything but tensors and plain Python
            types (nothing in it is run), cannot be read, or lacks a part.
    """
    ckpt = safe_load(path, map_location)
    needed = {"iteration", "policy", "optimizer", "kl_controller", "rng", "env_items"}
    if not isinstance(ckpt, dict) or not needed <= ckpt.keys():
        missing = sorted(needed - (ckpt.keys() if isinstance(ckpt, dict) else set()))
        raise ConfigError(f"{path} is not a ppo_text.py checkpoint (missing {missing}); delete it to start afresh")
    return ckpt


# ----------------------------------------------------------------------------- training
def make_env(args: Args) -> gym.Env:
    """The text-signal env named by ``args`` (Receiver built from the spec string); :func:`train` steps a
    ``batch_size``-env vector view of it (:func:`make_vector_env`)."""
    kwargs: dict[str, Any] = dict(signals="text", split=args.split, receiver=args.receiver)
    if args.data_dir is not None:
        kwargs["data_dir"] = args.data_dir
    if args.subset_size is not None:
        kwargs["subset_size"] = args.subset_size
    rkw: dict[str, Any] = {"max_new_tokens": args.receiver_max_new_tokens}
    if args.receiver.strip().lower() == "smollm2" or args.receiver.strip().lower().startswith("hf:"):
        rkw.update(device=args.receiver_device, batch_size=args.receiver_batch_size)
    kwargs["receiver_kwargs"] = rkw
    return gym.make(args.env_id, **kwargs)


def train(args: Args, *, env: gym.Env | gym.vector.VectorEnv | None = None, actor_critic: ActorCritic | None = None,
          tokenizer: Any = None, ref_lm: nn.Module | None = None,
          callback: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Run PPO; returns ``{"history", "start_iteration", "actor_critic", "kl_coef", "save_dir"}``.

    ``env``, ``actor_critic`` + ``tokenizer`` and ``ref_lm`` may be passed in
    (tests, benchmarks); otherwise they are built from ``args``.  ``env`` is
    a single text-signal LLM env (stepped through a ``batch_size``-env view)
    or a vector env of ``batch_size`` sub-envs, possibly wrapped (e.g. in a
    :class:`~bpa_gym.wrappers.VectorRegretWrapper`: its wrappers see every play).  With
    ``args.resume`` and an existing checkpoint, training continues from it
    (the passed/built weights are overwritten by the checkpoint's).
    ``callback(iteration, stats)`` runs after each iteration (and after its
    checkpoint is written).
    """
    from torch.utils.tensorboard import SummaryWriter

    args.validate()
    device = resolve_device(args.device)
    seed_everything(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    save_dir = args.resolved_save_dir()
    ckpt_path = save_dir / "checkpoint.pt"

    venv = make_vector_env(env if env is not None else make_env(args), args.batch_size)
    observations, _ = venv.reset(seed=args.seed)  # sub-env i draws its items from seed + i
    if actor_critic is None:
        actor_critic, tokenizer = make_policy(args.policy, args.tokenizer, seed=args.seed, device=device)
    elif tokenizer is None:
        raise ConfigError("train(actor_critic=...) needs tokenizer= too")
    actor_critic.to(device).eval()
    if ref_lm is None:
        ref_lm = make_reference(actor_critic)
        if args.resume and (save_dir / "ref.pt").exists():
            ref_lm.load_state_dict(safe_load(save_dir / "ref.pt"))
    ref_lm.to(device).eval().requires_grad_(False)
    optimizer = torch.optim.Adam(actor_critic.parameters(), lr=args.learning_rate, eps=1e-5)
    kl_ctl = KLController(args.init_kl_coef, args.target_kl if args.adaptive_kl else None, args.kl_horizon)
    stop_ids = stop_token_ids(tokenizer, args.stop_at_newline)

    start = 0
    if args.resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        actor_critic.load_state_dict(ckpt["policy"])
        optimizer.load_state_dict(ckpt["optimizer"])
        kl_ctl.load_state_dict(ckpt["kl_controller"])
        set_rng_state(ckpt["rng"])
        venv.unwrapped.set_item_state(ckpt["env_items"])  # the item streams continue where they were saved
        observations = tuple(item.question for item in venv.unwrapped.current_items)
        start = int(ckpt["iteration"])
        print(f"resumed from {ckpt_path} at iteration {start}", file=sys.stderr)

    writer = SummaryWriter(str(save_dir))
    if start == 0:
        writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(
            f"|{k}|{v}|" for k, v in dataclasses.asdict(args).items()))
    history: list[dict[str, float]] = []
    iterator = range(start, args.num_iterations)
    if args.progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, initial=start, total=args.num_iterations, desc="ppo", dynamic_ncols=True)
    for iteration in iterator:
        if args.anneal_lr:
            for group in optimizer.param_groups:
                group["lr"] = args.learning_rate * (1.0 - iteration / args.num_iterations)
        t0 = time.perf_counter()
        batch, observations = rollout(venv, observations, actor_critic, ref_lm, tokenizer, args, stop_ids, device)
        sync(device)
        t1 = time.perf_counter()
        stats = ppo_update(actor_critic, optimizer, batch, args, kl_ctl.value, device)
        sync(device)
        t2 = time.perf_counter()
        kl_coef_used = kl_ctl.value
        kl_ctl.update(stats["kl"], args.batch_size)
        it = iteration + 1
        row = {
            "iteration": it, "reward": batch["scores"].mean().item(), "kl_coef": kl_coef_used,
            "SPS": args.batch_size / (t2 - t0), "time_update": t2 - t1,
            "signal_tokens": batch["response_mask"].float().sum(1).mean().item(),
            **{f"time_{k}": v for k, v in batch["timing"].items()}, **stats,
        }
        history.append(row)
        step = it * args.batch_size
        writer.add_scalar("charts/reward", row["reward"], step)
        writer.add_scalar("charts/SPS", row["SPS"], step)
        writer.add_scalar("charts/kl_coef", kl_coef_used, step)
        writer.add_scalar("charts/signal_tokens", row["signal_tokens"], step)
        writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], step)
        writer.add_scalar("losses/policy", stats["policy"], step)
        writer.add_scalar("losses/value", stats["value"], step)
        writer.add_scalar("losses/approx_kl", stats["approx_kl"], step)
        writer.add_scalar("losses/clipfrac", stats["clipfrac"], step)
        writer.add_scalar("kl", stats["kl"], step)
        writer.add_scalar("entropy", stats["entropy"], step)
        for k, v in batch["timing"].items():
            writer.add_scalar(f"time/{k}", v, step)
        writer.add_scalar("time/update", t2 - t1, step)
        if it == 1 or it % 10 == 0:
            writer.add_text("signals", "\n\n".join(
                f"`{s!r}` -> {r} ({info['parse_status']})" for s, r, info in
                zip(batch["signals"][:8], batch["scores"][:8].tolist(), batch["infos"][:8])), step)
        if args.progress:
            iterator.set_postfix(reward=f"{row['reward']:.3f}", kl=f"{stats['kl']:.2f}")
        if (args.save_every and it % args.save_every == 0) or it == args.num_iterations:
            save_checkpoint(save_dir, it, actor_critic, ref_lm, optimizer, kl_ctl, venv, args)
        if callback is not None:
            callback(it, row)
    writer.close()
    return {"history": history, "start_iteration": start, "actor_critic": actor_critic, "kl_coef": kl_ctl.value,
            "save_dir": save_dir}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    out = train(args)
    hist = out["history"]
    if hist:
        k = max(1, len(hist) // 10)
        first, last = np.mean([h["reward"] for h in hist[:k]]), np.mean([h["reward"] for h in hist[-k:]])
        print(f"mean reward: first {k} iterations {first:.3f} -> last {k} {last:.3f}; "
              f"checkpoints and TensorBoard events in {out['save_dir']}")


if __name__ == "__main__":
    main()
