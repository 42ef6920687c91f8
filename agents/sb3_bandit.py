"""Contextual-bandit Advisors on discrete signals: SB3 PPO/A2C with a GPT-2 policy, and classical bandits.

Each episode of a bpa_gym env is one step (observe an item, send one of m
signals, get the Receiver's correctness), so the Advisor problem with discrete
signals is a contextual bandit.  This file trains one Advisor and evaluates it
on the same path for every algorithm:

* ``--algo ppo|a2c``: Stable-Baselines3 with ``gamma=0`` (one-step episodes,
  so the value is the expected reward), learning on the env's native vector
  env of ``--num-envs`` sub-envs through :class:`bpa_gym.integrations.sb3.SB3VecEnv`:
  each SB3 step plays all sub-envs with ONE Receiver batch.  Observations are
  the item's token ids (the encoding of
  :class:`bpa_gym.wrappers.TokenIdsObservation`); the features extractor is a
  GPT-2 (hub id, local folder with weights, or a random init from a config;
  frozen or trainable) on the GPU when present, pooled over real tokens.
* ``--algo ucb1|thompson|exp3|linucb``: the classical learners of
  ``agents/bandits.py``, keyed by the item text (LinUCB on hashed
  bag-of-words features), one play per step on the single env
  (``agents.bandits.run_bandit``), as a bandit learns.

Training runs inside a regret wrapper when the env has a regret oracle (the
Identity env always; the GSM8K env with ``--oracle-table``):
:class:`bpa_gym.wrappers.VectorRegretWrapper` around the vector env for SB3
(it sees every sub-env's play), :class:`bpa_gym.wrappers.RegretWrapper`
around the single env for the classical learners, so every algorithm gets the
same cumulative-regret curves in TensorBoard (``--log-dir``), over plays.
Evaluation then plays the learned policy without exploration on the vector
env (``--num-envs`` items per Receiver batch).

Run (offline, seconds):
    python agents/sb3_bandit.py --algo ppo --env BayesPersuasion-Identity-v0 --total-steps 2000
    python agents/sb3_bandit.py --algo ucb1 --env BayesPersuasion-Identity-v0 --total-steps 2000
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `agents.*` importable when run as a script

import bpa_gym  # noqa: E402  (registers the envs)
from bpa_gym import ConfigError, OracleUnavailableError  # noqa: E402
from bpa_gym.common import resolve_device, seed_everything  # noqa: E402
from bpa_gym.wrappers import RegretWrapper, TokenIdsObservation, VectorRegretWrapper  # noqa: E402

from agents.bandits import UCB1, Exp3, LinUCB, ThompsonSampling, run_bandit  # noqa: E402

DEFAULT_TOKENIZER = str(Path(__file__).resolve().parents[2] / "shared" / "models" / "gpt2")


@dataclass
class Args:
    """Every setting of a run; each field is one ``--kebab-case`` flag of the command line."""

    algo: Literal["ppo", "a2c", "ucb1", "thompson", "exp3", "linucb"] = "ppo"
    """The Advisor: ppo | a2c (SB3, GPT-2 policy) | ucb1 | thompson | exp3 | linucb (classical bandits)."""
    env: str = "BayesPersuasion-Identity-v0"
    """Env id with discrete signals."""
    receiver: str | None = None
    """Receiver spec (default: the env's own)."""
    receiver_max_new_tokens: int | None = None
    """Generation budget of a spec-built Receiver (e.g. 64 for quick runs)."""
    data_dir: str | None = None
    """Folder holding gsm8k/ (GSM8K env)."""
    subset_size: int | None = None
    """Use the first N items of the split."""
    oracle_table: str | None = None
    """Oracle table .npz for regret on LLM envs."""
    total_steps: int = 3000
    """Training plays (= one-step episodes); SB3 rounds up to whole rollouts of n_steps x num_envs."""
    eval_steps: int = 256
    """Greedy evaluation plays after training (rounded up to a multiple of num_envs)."""
    num_envs: int = 8
    """Sub-envs of the vector env (SB3 training, evaluation): each vector step is one Receiver batch of this size."""
    seed: int = 0
    """Seed of the env, the agent and torch."""
    tokenizer: str = DEFAULT_TOKENIZER
    """Tokenizer hub id or folder (GPT-2's)."""
    extractor: str = "random:tiny"
    """GPT-2 features extractor: hub id / folder with weights, or random:tiny | random:<config folder>."""
    trainable_extractor: bool = False
    """Fine-tune the GPT-2 extractor too."""
    pooling: Literal["mean", "max", "meanmax"] = "meanmax"
    """How token states become features: mean | max | meanmax (both, concatenated)."""
    max_length: int = 64
    """Token ids per observation."""
    n_steps: int = 8
    """SB3 rollout length per sub-env (a rollout holds n_steps x num_envs plays)."""
    batch_size: int = 64
    """SB3 minibatch size (PPO)."""
    learning_rate: float = 3e-3
    """SB3 learning rate."""
    ent_coef: float = 0.0
    """SB3 entropy bonus."""
    device: str = "auto"
    """'auto' (CUDA when present) | 'cpu' | 'cuda'."""
    log_dir: str | None = None
    """TensorBoard folder (regret + SB3 logs)."""
    out: str | None = None
    """Write the summary as JSON here."""


def make_gpt2_extractor_class():
    """Build the SB3 features-extractor class (imports SB3 lazily)."""
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class _GPT2FeaturesExtractor(BaseFeaturesExtractor):
        """GPT-2 over token-id observations, pooled over non-pad positions.

        Dropout is off (every dropout probability of the GPT-2 config is 0):
        SB3 rolls out in eval mode and trains in train mode, so a dropout
        extractor would score the rollout's actions with a different,
        noisier network than the one that chose them (biased PPO ratios,
        A2C gradients of the wrong policy), and a frozen extractor's cached
        features would depend on the mode that first computed them.  Without
        dropout the features are one deterministic function of the ids in
        both modes.
        """

        def __init__(self, observation_space, model: str = "random:tiny", pad_token_id: int = 50256,
                     trainable: bool = False, vocab_size: int | None = None, pooling: str = "meanmax"):
            if pooling not in ("mean", "max", "meanmax"):
                raise ConfigError(f"pooling must be mean, max or meanmax, got {pooling!r}")
            backbone = load_gpt2_backbone(model, vocab_size)
            width = backbone.config.n_embd * (2 if pooling == "meanmax" else 1)
            super().__init__(observation_space, features_dim=width)
            self.pooling = pooling
            self.backbone = backbone
            self.pad_token_id = int(pad_token_id)
            self.trainable = trainable
            self.cache_size = 100_000
            self._cache: dict[bytes, torch.Tensor] = {}
            if not trainable:
                self.backbone.requires_grad_(False)
                self.backbone.eval()

        def forward(self, observations: torch.Tensor) -> torch.Tensor:
            ids = observations.long()  # SB3 hands Box observations over as floats
            if self.trainable:
                return self._features(ids)
            # Frozen: the features are a fixed function of the ids, so each distinct item is encoded once
            # (PPO revisits every sample for n_epochs, and items recur across rollouts).
            keys = [row.tobytes() for row in ids.cpu().numpy()]
            missing: dict[bytes, int] = {}  # uncached key -> its first row
            for row, k in enumerate(keys):
                if k not in self._cache:
                    missing.setdefault(k, row)
            if missing:
                with torch.no_grad():
                    feats = self._features(ids[list(missing.values())])
                if len(self._cache) + len(missing) > self.cache_size:
                    self._cache.clear()
                self._cache.update(zip(missing, feats))
            return torch.stack([self._cache[k] for k in keys])

        def _features(self, ids: torch.Tensor) -> torch.Tensor:
            mask = (ids != self.pad_token_id).long()
            mask[:, 0] = 1  # never an all-padding row
            hidden = self.backbone(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * m).sum(1) / m.sum(1)
            if self.pooling == "mean":
                return mean
            peak = hidden.masked_fill(m == 0, float("-inf")).amax(1)
            return peak if self.pooling == "max" else torch.cat([mean, peak], dim=-1)

    return _GPT2FeaturesExtractor


#: GPT-2's dropout probabilities, all 0 for the features extractor (see its docstring).
NO_DROPOUT = dict(embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0)


def load_gpt2_backbone(spec: str, vocab_size: int | None = None) -> nn.Module:
    """A GPT-2 body without dropout: ``random:tiny``, ``random:<config folder or hub id>``, or pretrained weights.

    Every dropout probability is set to 0 (:data:`NO_DROPOUT`), whatever the
    config says, so the body computes the same features in train and eval mode.
    """
    from transformers import AutoConfig, GPT2Config, GPT2Model

    if spec == "random:tiny":
        body = GPT2Model(GPT2Config(n_layer=2, n_head=2, n_embd=64, n_positions=512, vocab_size=vocab_size or 50257,
                                    **NO_DROPOUT))
    elif spec.startswith("random:"):
        body = GPT2Model(AutoConfig.from_pretrained(spec.split(":", 1)[1], **NO_DROPOUT))
    else:
        body = GPT2Model.from_pretrained(spec, **NO_DROPOUT)
    leftover = [name for name, m in body.named_modules() if isinstance(m, nn.Dropout) and m.p > 0]
    if leftover:  # pragma: no cover - only for a config with dropout fields GPT-2's do not name
        raise ConfigError(f"extractor {spec!r} still has dropout in {leftover[:3]}; use a GPT-2 config")
    return body


def hashed_bow(text: str, dim: int = 64) -> np.ndarray:
    """Hashed bag-of-words features of an item text (plus a bias), for LinUCB."""
    x = np.zeros(dim + 1)
    x[-1] = 1.0
    for word in re.findall(r"[a-z]+", text.lower()):
        x[int(hashlib.md5(word.encode()).hexdigest(), 16) % dim] += 1.0
    return x / max(np.linalg.norm(x), 1.0)


class Frozen:
    """Evaluation adapter: a classical bandit's greedy action, no updates."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent

    def act(self, obs: Any) -> int:
        greedy = getattr(self.agent, "greedy", None)
        return int(greedy(obs)) if greedy is not None else int(self.agent.act(obs))

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass


def env_kwargs(args: Args, receiver: Any = None) -> dict[str, Any]:
    """The env's keyword arguments from ``args`` (``receiver``: a Receiver object overriding ``args.receiver``)."""
    kwargs: dict[str, Any] = {}
    if receiver is not None:
        kwargs["receiver"] = receiver
    elif args.receiver is not None:
        kwargs["receiver"] = args.receiver
        if args.receiver_max_new_tokens is not None:
            kwargs["receiver_kwargs"] = {"max_new_tokens": args.receiver_max_new_tokens}
    if args.data_dir is not None:
        kwargs["data_dir"] = args.data_dir
    if args.subset_size is not None:
        kwargs["subset_size"] = args.subset_size
    if args.oracle_table is not None:
        kwargs["oracle_table"] = args.oracle_table
    return kwargs


def make_env(args: Args, tokenized: bool, receiver: Any = None) -> gym.Env:
    """The single env (classical bandits: one play per step), with token-id observations if ``tokenized``."""
    env = gym.make(args.env, **env_kwargs(args, receiver))
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise ConfigError(f"{args.env} has action space {env.action_space}; bandit agents need discrete signals")
    if tokenized:
        env = TokenIdsObservation(env, args.tokenizer, max_length=args.max_length)
    return env


def make_vector_env(args: Args, receiver: Any = None) -> gym.vector.VectorEnv:
    """The env's native vector env of ``args.num_envs`` sub-envs: each step is ONE Receiver batch."""
    venv = gym.make_vec(args.env, num_envs=args.num_envs, vectorization_mode="vector_entry_point",
                        **env_kwargs(args, receiver))
    if not isinstance(venv.single_action_space, gym.spaces.Discrete):
        raise ConfigError(f"{args.env} has action space {venv.single_action_space}; bandit agents need discrete "
                          "signals")
    return venv


def make_sb3_env(venv: gym.vector.VectorEnv, args: Args):
    """An SB3 ``VecEnv`` over ``venv`` with token-id observations (one Receiver batch per SB3 step)."""
    from bpa_gym.integrations.sb3 import SB3VecEnv

    return SB3VecEnv(venv, args.tokenizer, max_length=args.max_length)


def with_regret(env: gym.Env | gym.vector.VectorEnv, log_dir: str | None) -> gym.Env | gym.vector.VectorEnv:
    """Wrap in RegretWrapper (VectorRegretWrapper for a vector env) when the env has an oracle; say so either way."""
    try:
        if isinstance(env, gym.vector.VectorEnv):
            wrapped = VectorRegretWrapper(env, log_dir=log_dir)
        else:
            wrapped = RegretWrapper(env, log_dir=log_dir)
    except OracleUnavailableError as exc:
        print(f"regret: not tracked ({exc})")
        return env
    print(f"regret: {wrapped.oracle_name}")
    return wrapped


def make_classical(args: Args, n_actions: int):
    key = str  # the item text is the context
    if args.algo == "ucb1":
        return UCB1(n_actions, context_key=key, seed=args.seed)
    if args.algo == "thompson":
        return ThompsonSampling(n_actions, context_key=key, seed=args.seed)
    if args.algo == "exp3":
        return Exp3(n_actions, context_key=key, seed=args.seed)
    if args.algo == "linucb":
        return LinUCB(n_actions, features=hashed_bow, seed=args.seed)
    raise ConfigError(f"unknown --algo {args.algo!r}; choose ppo, a2c, ucb1, thompson, exp3 or linucb")


def plain(regret: dict[str, Any] | None) -> dict[str, Any] | None:
    """A regret dict with numpy arrays and scalars as lists and Python numbers (for JSON)."""
    if regret is None:
        return None
    return {k: v.tolist() if isinstance(v, (np.ndarray, np.generic)) else v for k, v in regret.items()}


def evaluate(args: Args, act: Any, tokenized: bool, receiver: Any = None) -> dict[str, Any]:
    """Greedy plays on a fresh vector env (sub-env i seeded ``seed + 1 + i``), ``num_envs`` per Receiver batch.

    ``act(observations)`` maps a batch of observations (token ids if
    ``tokenized``, else item texts) to a batch of signal indices.
    """
    venv = make_vector_env(args, receiver)
    steps = -(-args.eval_steps // args.num_envs)
    total = 0.0
    if tokenized:
        env = make_sb3_env(venv, args)
        env.seed(args.seed + 1)
        obs = env.reset()
        for _ in range(steps):
            obs, rewards, _dones, _infos = env.step(np.asarray(act(obs)))
            total += float(np.sum(rewards))
    else:
        env = venv
        obs, _ = venv.reset(seed=args.seed + 1)
        for _ in range(steps):
            obs, rewards, _term, _trunc, _info = venv.step(np.asarray(act(obs)))
            total += float(np.sum(rewards))
    env.close()
    plays = steps * args.num_envs
    return {"plays": plays, "mean_reward": total / plays}


def train(args: Args, *, receiver: Any = None) -> dict[str, Any]:
    """Train one Advisor, evaluate it greedily, return a summary dict.

    ``receiver``: a Receiver object to use instead of ``args.receiver`` (e.g.
    a test double that records its batch sizes).
    """
    seed_everything(args.seed)
    device = str(resolve_device(args.device))
    sb3 = args.algo in ("ppo", "a2c")
    if sb3:
        from stable_baselines3 import A2C, PPO

        venv = with_regret(make_vector_env(args, receiver), args.log_dir)
        env = make_sb3_env(venv, args)
        policy_kwargs = dict(
            features_extractor_class=make_gpt2_extractor_class(),
            features_extractor_kwargs=dict(model=args.extractor, pad_token_id=env.encoder.pad_token_id,
                                           trainable=args.trainable_extractor,
                                           vocab_size=len(env.encoder.tokenizer), pooling=args.pooling),
            net_arch=dict(pi=[64], vf=[64]),
        )
        common = dict(gamma=0.0, learning_rate=args.learning_rate, n_steps=args.n_steps, ent_coef=args.ent_coef,
                      policy_kwargs=policy_kwargs, seed=args.seed, device=device, verbose=0,
                      tensorboard_log=args.log_dir)
        if args.algo == "ppo":
            model = PPO("MlpPolicy", env, batch_size=args.batch_size, gae_lambda=1.0, **common)
        else:
            model = A2C("MlpPolicy", env, gae_lambda=1.0, **common)
        model.learn(total_timesteps=args.total_steps, progress_bar=False)
        train_stats = None
        final_regret = plain(venv.regret_info()) if isinstance(venv, VectorRegretWrapper) else None
        env.close()  # flushes the regret log

        def act(obs):
            return model.predict(obs, deterministic=True)[0]
    else:
        env = with_regret(make_env(args, tokenized=False, receiver=receiver), args.log_dir)
        agent = make_classical(args, env.action_space.n)
        train_stats = run_bandit(env, agent, args.total_steps, seed=args.seed)
        final_regret = plain(train_stats["final_regret"])
        env.close()  # flushes the regret log
        frozen = Frozen(agent)

        def act(obs):
            return [frozen.act(o) for o in obs]
    evaluation = evaluate(args, act, tokenized=sb3, receiver=receiver)
    summary = {"args": dataclasses.asdict(args), "device": device, "train": train_stats,
               "final_regret": final_regret, "eval_plays": evaluation["plays"],
               "eval_mean_reward": evaluation["mean_reward"]}
    return summary


def parse_args(argv: list[str] | None = None) -> Args:
    """:class:`Args` from the command line with ``tyro`` (``--help`` shows the fields' docstrings)."""
    import tyro

    return tyro.cli(Args, args=argv, description=__doc__.split("\n\n")[0])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    summary = train(args)
    print(f"algo={args.algo} env={args.env} steps={args.total_steps} eval_mean_reward={summary['eval_mean_reward']:.3f}")
    if summary["final_regret"]:
        r = summary["final_regret"]
        print(f"cumulative regret {r['cumulative']:.1f}  bound {r['bound']:.1f}  ratio {r['ratio']:.3f}")
    if args.out:
        import json

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=2, default=str))
    return summary


if __name__ == "__main__":
    main()
