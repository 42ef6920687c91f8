"""bpa-gym: Bayesian Persuasion Alignment as a reinforcement-learning environment.

An Advisor observes an information item and sends a signal to a black-box
Receiver LLM; the reward is the Receiver's correctness (Bai et al. 2024,
arXiv 2405.18718).  Tabular Bayesian persuasion games (Kamenica-Gentzkow) with
an exact LP optimum live beside them on the same abstractions.

Importing the package registers its Gymnasium environments:

>>> import gymnasium as gym, bpa_gym
>>> "BayesPersuasion-GSM8K-v0" in gym.registry
True
"""

from __future__ import annotations

from bpa_gym.errors import (
    BPAError,
    ConfigError,
    DataNotFoundError,
    ModelNotFoundError,
    OracleUnavailableError,
    ReceiverError,
    SandboxError,
)
from bpa_gym.game import PersuasionGame
from bpa_gym.prompts import PromptTemplate
from bpa_gym.receivers.base import GenerationConfig, Receiver
from bpa_gym.registration import ENV_SPECS, register_envs
from bpa_gym.signals import CODE_SIGNALS, MATH_SIGNALS, SignalLibrary
from bpa_gym.types import Generation, Item, Message, Outcome, Score

__version__ = "0.1.0"

register_envs()


def make(env_id: str, **kwargs):
    """``gymnasium.make`` for bpa_gym ids (accepts ``"bpa_gym:<id>"`` too).

    Example:
        >>> import bpa_gym
        >>> env = bpa_gym.make("BayesPersuasion-GSM8K-v0", receiver="smollm2")  # doctest: +SKIP
    """
    import gymnasium as gym

    return gym.make(env_id, **kwargs)


def env_ids() -> list[str]:
    """Ids of every registered bpa_gym environment."""
    return [spec[0] for spec in ENV_SPECS]


__all__ = [
    "BPAError", "ConfigError", "DataNotFoundError", "ModelNotFoundError", "OracleUnavailableError", "ReceiverError",
    "SandboxError",
    "PersuasionGame", "PromptTemplate", "GenerationConfig", "Receiver", "SignalLibrary", "MATH_SIGNALS",
    "CODE_SIGNALS", "Generation", "Item", "Message", "Outcome", "Score", "make", "env_ids", "__version__",
]
