"""Gymnasium wrappers for bpa_gym environments."""

from bpa_gym.wrappers.token_ids import TokenIdsObservation

__all__ = ["TokenIdsObservation"]
