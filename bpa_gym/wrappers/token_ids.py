"""Observation wrapper: the item text as a fixed-length Box of token ids (for SB3 and other array agents)."""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np

from bpa_gym.common.validation import Arguments, PositiveInt, check
from bpa_gym.errors import ConfigError


class _TokenIdsArgs(Arguments):
    max_length: PositiveInt = 256
    truncation_side: Literal["left", "right"] = "left"


class TokenIdsObservation(gym.ObservationWrapper):
    """Turn a Text observation into a fixed-length ``Box`` of token ids.

    Stable-Baselines3 has no Text space; this wrapper tokenizes the item with
    any Hugging Face tokenizer (e.g. GPT-2's) and pads/truncates it to
    ``max_length`` ids.  Padding uses ``pad_token_id`` (the tokenizer's pad
    token, else its EOS token); the attention mask of an observation is
    ``obs != wrapper.pad_token_id`` for tokenizers whose pad id never occurs
    in text, and ``wrapper.lengths`` gives the true length of the last
    observation.

    Args:
        env: An env with a :class:`~gymnasium.spaces.Text` observation space.
        tokenizer: A tokenizer object, or a hub id / local folder for
            ``AutoTokenizer.from_pretrained``.
        max_length: Number of ids per observation.
        truncation_side: ``"left"`` keeps the end of long items (where a
            question's ask usually is); ``"right"`` keeps the start.
        dtype: Integer dtype of the Box (``np.int64`` default).

    Example:
        >>> import gymnasium as gym, bpa_gym
        >>> from bpa_gym.wrappers import TokenIdsObservation
        >>> env = TokenIdsObservation(gym.make("BayesPersuasion-Identity-v0"),
        ...                           "../shared/models/gpt2", max_length=32)  # doctest: +SKIP
        >>> obs, _ = env.reset(seed=0)  # doctest: +SKIP
        >>> obs.shape  # doctest: +SKIP
        (32,)
    """

    def __init__(
        self,
        env: gym.Env,
        tokenizer: Any,
        max_length: int = 256,
        truncation_side: Literal["left", "right"] = "left",
        dtype: type = np.int64,
    ) -> None:
        super().__init__(env)
        if not isinstance(env.observation_space, gym.spaces.Text):
            raise ConfigError(
                f"TokenIdsObservation needs a Text observation space, got {env.observation_space}; "
                "wrap a bpa_gym LLM env (not an already-tokenized one)"
            )
        check(_TokenIdsArgs, "TokenIdsObservation", max_length=max_length, truncation_side=truncation_side)
        if not (isinstance(dtype, (type, np.dtype)) and np.issubdtype(dtype, np.integer)):
            raise ConfigError(f"TokenIdsObservation: invalid argument\n  - dtype = {dtype!r:.60}: must be a numpy "
                              "integer dtype such as np.int64")
        if isinstance(tokenizer, (str, bytes)) or hasattr(tokenizer, "__fspath__"):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise ConfigError("the tokenizer has neither a pad nor an EOS token; set tokenizer.pad_token first")
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.truncation_side = truncation_side
        self.pad_token_id = int(pad)
        self.lengths = 0
        vocab = len(tokenizer)
        self.observation_space = gym.spaces.Box(low=0, high=vocab - 1, shape=(self.max_length,), dtype=dtype)

    def observation(self, observation: str) -> np.ndarray:
        ids = self.tokenizer(observation, add_special_tokens=False)["input_ids"]
        if len(ids) > self.max_length:
            ids = ids[-self.max_length:] if self.truncation_side == "left" else ids[: self.max_length]
        self.lengths = len(ids)
        out = np.full(self.max_length, self.pad_token_id, dtype=self.observation_space.dtype)
        out[: len(ids)] = ids
        return out
