"""A custom Advisor in under 30 lines: epsilon-greedy per item over discrete signals, public API only."""

import collections
import random

import gymnasium as gym

import bpa_gym  # noqa: F401  (registers the envs)
from bpa_gym.wrappers import RegretWrapper


def run(env_id="BayesPersuasion-Identity-v0", steps=2000, eps=0.1, seed=0, **env_kwargs):
    env = RegretWrapper(gym.make(env_id, **env_kwargs))  # info["regret"] vs. the env's oracle
    n = env.action_space.n
    value, count = collections.defaultdict(lambda: [0.0] * n), collections.defaultdict(lambda: [0] * n)
    rng = random.Random(seed)
    obs, info = env.reset(seed=seed)
    for _ in range(steps):
        q = value[obs]  # one value table per item (the observation is the item's text)
        a = rng.randrange(n) if rng.random() < eps else max(range(n), key=q.__getitem__)
        _, reward, _, _, info = env.step(a)
        count[obs][a] += 1
        q[a] += (reward - q[a]) / count[obs][a]
        obs, _ = env.reset()  # one-step episodes: the next item
    return info["regret"]


if __name__ == "__main__":
    print(run())
