"""Stable-Baselines3 ``VecEnv`` over a native bpa_gym vector env: one Receiver batch per SB3 step.

SB3's own ``DummyVecEnv``/``SubprocVecEnv`` step their N envs one at a time,
so an LLM Receiver sees N calls of batch 1.  :class:`SB3VecEnv` wraps the
native vector env (``gym.make_vec(ID, N, vectorization_mode="vector_entry_point")``),
whose step plays all N signals with one :meth:`~bpa_gym.game.PersuasionGame.play`,
and turns its Text observations into token ids with the encoding of
:class:`~bpa_gym.wrappers.token_ids.TokenIdsObservation` (SB3 has no Text
space).

SB3 conventions: ``step_wait`` returns ``(obs, rewards, dones, infos)`` with
``infos`` a list of N dicts: the single env's step info (the ``STEP_INFO_KEYS``),
``terminal_observation`` (the token ids of the item just played, since every
episode ends each step and the returned observation is already the next
item's) and ``TimeLimit.truncated``.  Seeds set by :meth:`seed` and options
by ``set_options`` apply to the next :meth:`reset`.

The N sub-envs of a native vector env share one env object (one Receiver):
``get_attr``/``env_method`` read or call it once per index, and ``set_attr``
sets it for all sub-envs (a subset is refused).

Example:
    >>> import gymnasium as gym, bpa_gym
    >>> from bpa_gym.integrations.sb3 import SB3VecEnv
    >>> venv = SB3VecEnv(gym.make_vec("BayesPersuasion-Identity-v0", num_envs=8,
    ...                               vectorization_mode="vector_entry_point"),
    ...                  "../shared/models/gpt2", max_length=16)  # doctest: +SKIP
    >>> from stable_baselines3 import PPO  # doctest: +SKIP
    >>> PPO("MlpPolicy", venv, n_steps=16).learn(1024)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

try:
    from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError("bpa_gym.integrations.sb3 needs Stable-Baselines3: pip install 'bpa-gym[agents]'") from e

from bpa_gym.errors import ConfigError
from bpa_gym.wrappers.token_ids import TokenIdsObservation

__all__ = ["SB3VecEnv"]


class _Spaces(gym.Env):
    """A stand-in env carrying the single spaces, so TokenIdsObservation's encoder can be reused as is."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.observation_space = observation_space
        self.action_space = action_space


class SB3VecEnv(VecEnv):
    """An SB3 ``VecEnv`` stepping a native bpa_gym vector env (token-id observations).

    Args:
        venv: A Gymnasium vector env with Text observations and ``SAME_STEP``
            autoreset: the native vector env of an LLM env
            (``vectorization_mode="vector_entry_point"``).
        tokenizer: A tokenizer, or a hub id / local folder (e.g. GPT-2's).
        max_length: Token ids per observation.
        truncation_side: ``"left"`` keeps the end of long items, ``"right"`` the start.
        dtype: Integer dtype of the observations.
    """

    def __init__(self, venv: gym.vector.VectorEnv, tokenizer: Any, max_length: int = 256,
                 truncation_side: Literal["left", "right"] = "left", dtype: type = np.int64) -> None:
        if not isinstance(venv, gym.vector.VectorEnv):
            raise ConfigError(f"SB3VecEnv needs a Gymnasium vector env (gym.make_vec(ID, N, vectorization_mode="
                              f"'vector_entry_point')), got {type(venv).__name__}")
        if venv.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
            raise ConfigError(f"SB3VecEnv needs SAME_STEP autoreset (SB3's convention), got "
                              f"{venv.metadata.get('autoreset_mode')}; use vectorization_mode='vector_entry_point'")
        self.venv = venv
        self.encoder = TokenIdsObservation(_Spaces(venv.single_observation_space, venv.single_action_space),
                                           tokenizer, max_length=max_length, truncation_side=truncation_side,
                                           dtype=dtype)
        super().__init__(venv.num_envs, self.encoder.observation_space, venv.single_action_space)
        self.render_mode = getattr(venv, "render_mode", None)
        self._actions: np.ndarray | None = None

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.encoder.observation(t) for t in texts])

    # ---------------------------------------------------------------- core
    def reset(self) -> np.ndarray:
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        options = None
        if any(self._options):
            if any(o != self._options[0] for o in self._options):
                raise ConfigError("SB3VecEnv: the native vector env takes one options dict for all sub-envs; "
                                  "pass the same options to set_options (e.g. {'item_index': [3, 5, ...]})")
            options = dict(self._options[0])
        obs, info = self.venv.reset(seed=seeds, options=options)
        self.reset_infos = [_sub_info(info, i) for i in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return self._encode(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        if self._actions is None:
            raise ConfigError("SB3VecEnv.step_wait() called without step_async(actions)")
        actions, self._actions = self._actions, None
        obs, rewards, terminated, truncated, info = self.venv.step(actions)
        dones = np.asarray(terminated) | np.asarray(truncated)
        infos = []
        ended = info.get("_final_info", np.zeros(self.num_envs, dtype=np.bool_))
        for i in range(self.num_envs):
            sub = _sub_info(info["final_info"], i) if ended[i] else _sub_info(info, i)
            sub["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            if dones[i]:
                sub["terminal_observation"] = self.encoder.observation(info["final_obs"][i])
                self.reset_infos[i] = _sub_info(info, i)
            infos.append(sub)
        return self._encode(obs), np.asarray(rewards, dtype=np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    # ------------------------------------------------------- attributes etc.
    def _target(self) -> Any:
        """The object attributes are read from: the shared single env of a native vector env, else the venv."""
        return getattr(self.venv.unwrapped, "env", self.venv.unwrapped)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        target = self._target()
        if not hasattr(target, attr_name):
            raise AttributeError(f"the env has no attribute {attr_name!r}")
        return [getattr(target, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if sorted(self._get_indices(indices)) != list(range(self.num_envs)):
            raise ConfigError("SB3VecEnv.set_attr: the sub-envs of a native vector env share one env; set an "
                              "attribute for all of them (indices=None)")
        setattr(self._target(), attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        method = getattr(self._target(), method_name)
        return [method(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        # The shared env of a native vector env is never wrapped (make_vec refuses wrappers in that mode).
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]


def _sub_info(info: dict[str, Any], i: int) -> dict[str, Any]:
    """Sub-env ``i``'s entries of a Gymnasium vector info dict, as plain Python values.

    A value that is not one entry per sub-env (a scalar, such as the running
    totals :class:`~bpa_gym.wrappers.VectorRegretWrapper` adds to
    ``info["regret"]``) is shared: every sub-env's info gets it.
    """
    out: dict[str, Any] = {}
    for key, value in info.items():
        if key.startswith("_") or key in ("final_info", "final_obs"):
            continue
        mask = info.get(f"_{key}")
        if mask is not None and not mask[i]:
            continue
        if isinstance(value, dict):
            item = _sub_info(value, i)
        elif isinstance(value, (np.ndarray, list, tuple)) and np.ndim(value) > 0:
            item = value[i]
        else:
            item = value
        out[key] = item.item() if isinstance(item, np.generic) else item
    return out
