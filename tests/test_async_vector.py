"""``gym.make_vec(ID, N, vectorization_mode="async")`` on an LLM env never deadlocks after torch has run in the
parent: the fork start method is refused with a clear error (workers hang on their first torch op after a fork
of a process whose OpenMP pool is up), the spawn context works.  Each case runs in a subprocess with a hard
timeout, so a deadlock fails the test instead of hanging the suite."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import sys
    import gymnasium as gym
    import bpa_gym
    from bpa_gym.envs.identity import IdentityReceiver

    class TorchReceiver(IdentityReceiver):
        """The rule-based Identity Receiver plus a torch op per batch, as an HF Receiver's generate does."""
        def generate(self, prompts):
            import torch
            x = torch.randn(128, 128)
            (x @ x).sum().item()
            return super().generate(prompts)

    if __name__ == "__main__":
        mode = sys.argv[1]
        if mode != "fork-no-torch":
            import torch
            torch.set_num_threads(2)
            a = torch.randn(256, 256)
            (a @ a).sum().item()  # the parent's OpenMP pool is up
        kw = {"vector_kwargs": {"context": "spawn"}} if mode == "spawn" else {}
        venv = gym.make_vec("BayesPersuasion-Identity-v0", num_envs=2, vectorization_mode="async",
                            receiver=TorchReceiver(), **kw)
        venv.reset(seed=0)
        rewards = venv.step([1, 2])[1]
        venv.close()
        native = gym.make_vec("BayesPersuasion-Identity-v0", num_envs=2, vectorization_mode="vector_entry_point")
        native.reset(seed=0)
        print("REWARDS", rewards.tolist(), native.step([1, 2])[1].tolist(), flush=True)
''')


def _run(tmp_path, mode: str, timeout: float = 240) -> subprocess.CompletedProcess:
    script = tmp_path / "async_case.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("OMP_NUM_THREADS", None)  # let torch start a real thread pool, as on a user's machine
    try:
        return subprocess.run([sys.executable, str(script), mode], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"make_vec(async, {mode}) deadlocked (no answer in {timeout} s); stderr: {e.stderr!r:.2000}")


def test_fork_after_torch_is_refused_with_clear_error(tmp_path):
    proc = _run(tmp_path, "fork")
    assert proc.returncode != 0, proc.stdout
    assert "ConfigError" in proc.stderr and "vectorization_mode='vector_entry_point'" in proc.stderr
    assert "vector_kwargs={'context': 'spawn'}" in proc.stderr


def test_spawn_after_torch_works_and_matches_native(tmp_path):
    proc = _run(tmp_path, "spawn")
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("REWARDS"))
    async_rewards, native_rewards = eval(line[len("REWARDS"):].replace("] [", "], ["))  # noqa: S307
    assert async_rewards == native_rewards and len(async_rewards) == 2


def test_fork_without_torch_still_works(tmp_path):
    proc = _run(tmp_path, "fork-no-torch")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "REWARDS" in proc.stdout
