"""Gymnasium registration of every bpa_gym environment (runs on ``import bpa_gym``).

Gymnasium 1.x has no plugin entry points, so registration happens when the
package is imported; ``gym.make("bpa_gym:<id>")`` imports it first.
"""

from __future__ import annotations

#: (env id, entry point, default kwargs, one-line description)
ENV_SPECS: list[tuple[str, str, dict, str]] = [
    (
        "BayesPersuasion-GSM8K-v0",
        "bpa_gym.envs.llm:BayesPersuasionLLMEnv",
        {"task": "gsm8k"},
        "GSM8K math: observe a question, signal a Receiver LLM, reward = its correctness",
    ),
    # --- tabular envs (exact LP oracle) ---
    # --- agent-testing envs ---
]


def register_envs() -> None:
    """Register every env in :data:`ENV_SPECS` (idempotent)."""
    import gymnasium as gym

    for env_id, entry_point, kwargs, _ in ENV_SPECS:
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, kwargs=dict(kwargs), disable_env_checker=False)
