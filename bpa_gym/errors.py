"""Exceptions raised by bpa_gym.

Every error names what is wrong and how to fix it.  They all derive from
:class:`BPAError` so callers can catch the library's failures in one place.
"""

from __future__ import annotations


class BPAError(Exception):
    """Base class of every error bpa_gym raises on purpose."""


class ConfigError(BPAError, ValueError):
    """An argument, keyword or spec string is invalid."""


class DataNotFoundError(BPAError, FileNotFoundError):
    """A dataset could not be found locally or loaded from the hub."""


class ReceiverError(BPAError, RuntimeError):
    """A Receiver failed to answer (server down, timeout, bad response, ...).

    A Receiver failure is never turned into a reward of 0: it is raised, or,
    where the caller asked for it, reported as a flagged outcome with
    ``status="receiver_error"`` and a NaN reward.
    """


class SandboxError(BPAError, RuntimeError):
    """The sandbox that runs Receiver code could not run it (bubblewrap missing or broken, no process).

    Not a verdict on the code: like a :class:`ReceiverError`, it is raised and
    never scored as a wrong answer (reward 0).
    """


class ModelNotFoundError(BPAError, OSError):
    """A model could not be located (offline, wrong id, package missing)."""


class OracleUnavailableError(BPAError, RuntimeError):
    """A regret oracle was requested for an environment that has none."""


__all__ = ["BPAError", "ConfigError", "DataNotFoundError", "ModelNotFoundError", "OracleUnavailableError",
           "ReceiverError", "SandboxError"]
