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
    (
        "BayesPersuasion-HumanEval-v0",
        "bpa_gym.envs.llm:BayesPersuasionLLMEnv",
        {"task": "humaneval"},
        "HumanEval code: observe a function to write, signal a Receiver LLM, reward = its code passes every test "
        "(run in a sandbox)",
    ),
    # --- tabular envs (exact LP oracle) ---
    (
        "BayesPersuasion-Tabular-v0",
        "bpa_gym.envs.tabular:TabularPersuasionEnv",
        {},
        "finite game (given arrays or random from game_seed): commit to a scheme or send signals; exact LP regret",
    ),
    (
        "BayesPersuasion-Prosecutor-v0",
        "bpa_gym.envs.tabular:TabularPersuasionEnv",
        {"game": "prosecutor"},
        "Kamenica-Gentzkow prosecutor (prior 0.7/0.3, judge convicts iff P(guilty) >= 0.5): optimal value 0.6",
    ),
    # --- agent-testing envs ---
    (
        "BayesPersuasion-Identity-v0",
        "bpa_gym.envs.identity:IdentityEnv",
        {},
        "known optimum for agent tests: the right signal is a function of the item (optimal reward 1.0)",
    ),
]


#: Envs whose ``step`` info carries wall-clock measurements (Receiver latency) and whose Receiver may be
#: sampled or remote: Gymnasium's determinism check (which compares ``info`` exactly) does not apply.
#: With a greedy local Receiver their observations and rewards are reproducible from the seed.
NONDETERMINISTIC: frozenset[str] = frozenset({"BayesPersuasion-GSM8K-v0", "BayesPersuasion-HumanEval-v0"})


#: Native vector envs (``gym.make_vec(ID, N, vectorization_mode="vector_entry_point")``): one Receiver batch
#: per step for all N sub-envs (see :mod:`bpa_gym.envs.llm_vector`).
VECTOR_ENTRY_POINTS: dict[str, str] = {
    "BayesPersuasion-GSM8K-v0": "bpa_gym.envs.llm_vector:BayesPersuasionLLMVectorEnv",
    "BayesPersuasion-HumanEval-v0": "bpa_gym.envs.llm_vector:BayesPersuasionLLMVectorEnv",
    "BayesPersuasion-Identity-v0": "bpa_gym.envs.llm_vector:IdentityVectorEnv",
}


def register_envs() -> None:
    """Register every env in :data:`ENV_SPECS` (idempotent)."""
    import gymnasium as gym

    for env_id, entry_point, kwargs, _ in ENV_SPECS:
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, kwargs=dict(kwargs), disable_env_checker=False,
                         nondeterministic=env_id in NONDETERMINISTIC,
                         vector_entry_point=VECTOR_ENTRY_POINTS.get(env_id))
