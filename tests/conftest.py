"""Shared pytest fixtures.  The suite runs offline: the Hugging Face hub is switched off here."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# The envs' default response cache is off in the suite: a test that counts Receiver calls or compares two
# paths must see real answers.  Tests of the cache pass their own database.
os.environ.setdefault("BPA_RESPONSE_CACHE", "off")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Property tests: CI (CI=true) replays the same derandomised examples every run, so a green main stays
# green; a developer's run explores new examples each time (HYPOTHESIS_PROFILE picks either).
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only offline assets beside the repo (../shared)."""
    if not (SHARED_DIR / "data").is_dir():
        pytest.skip(f"offline assets not found at {SHARED_DIR} (CI and dev machines have them)")
    return SHARED_DIR


@pytest.fixture(scope="session")
def shared_data_dir(shared_dir) -> Path:
    """../shared/data: holds gsm8k/ and humaneval/."""
    return shared_dir / "data"


@pytest.fixture(scope="session")
def gpt2_dir(shared_dir) -> Path:
    """../shared/models/gpt2: the real GPT-2 tokenizer and config, no weights."""
    return shared_dir / "models" / "gpt2"


@pytest.fixture()
def one_thread():
    """One torch thread for the test (restored afterwards): tiny models on a busy 2-core box only lose to
    intra-op thread contention."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- real Receivers (slow tests)


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The converted SmolLM2-135M-Instruct folder (converted once per cache, ~30-60 s on a CPU)."""
    pytest.importorskip("gguf", reason="the SmolLM2 receiver needs `pip install gguf`")
    from bpa_gym.errors import ModelNotFoundError
    from bpa_gym.receivers.smollm2 import smollm2_path

    try:
        return smollm2_path()
    except ModelNotFoundError as e:
        pytest.skip(str(e))


class ServedModel:
    """A running ``transformers serve`` process: its API root, model name, start-up time and log file."""

    def __init__(self, base_url: str, model: str, startup_s: float, log: Path) -> None:
        self.base_url, self.model, self.startup_s, self.log = base_url, model, startup_s, log


@pytest.fixture(scope="session")
def smollm2_server(smollm2_dir, tmp_path_factory):
    """``transformers serve`` pinned to the SmolLM2 folder on a free loopback port, offline; stopped at teardown."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    pytest.importorskip("fastapi", reason="needs `pip install 'transformers[serving]'`")
    pytest.importorskip("uvicorn", reason="needs `pip install 'transformers[serving]'`")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = str(smollm2_dir)
    log = tmp_path_factory.mktemp("transformers-serve") / "serve.log"
    cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", model,
           "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--log-level", "warning"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = t0 + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.perf_counter() > deadline:
                pytest.fail(f"transformers serve was not ready after 120 s:\n{log.read_text()[-4000:]}")
            time.sleep(0.25)
        yield ServedModel(base_url, model, time.perf_counter() - t0, log)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
