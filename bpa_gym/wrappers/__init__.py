"""Gymnasium wrappers for bpa_gym environments."""

from bpa_gym.wrappers.regret import RegretWrapper, regret_bound
from bpa_gym.wrappers.token_ids import TokenIdsObservation
from bpa_gym.wrappers.vector_regret import VectorRegretWrapper

__all__ = ["RegretWrapper", "TokenIdsObservation", "regret_bound"]
__all__ += ["VectorRegretWrapper"]
