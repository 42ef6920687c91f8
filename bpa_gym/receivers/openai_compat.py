"""A Receiver that calls an OpenAI-compatible chat-completions server.

Works with vLLM, SGLang, llama.cpp's server, ``transformers serve`` and the
OpenAI API itself: every prompt is one ``POST {base_url}/chat/completions``,
sent concurrently (at most ``max_concurrency`` at a time) over one connection
pool, with retries and exponential backoff on transient failures.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, Mapping, Sequence

import httpx

from bpa_gym.errors import ConfigError, ReceiverError
from bpa_gym.receivers import validate_prompts
from bpa_gym.receivers.base import GenerationConfig
from bpa_gym.types import ChatPrompt, Generation

OnError = Literal["flag", "raise"]

#: Longest wait honoured from a server's ``Retry-After`` header, in seconds.
MAX_RETRY_AFTER_S = 30.0


class _Fatal(Exception):
    """A failure that retrying cannot fix (4xx other than 429, malformed reply)."""


class _Transient(Exception):
    """A failure worth retrying (connection, timeout, 429, 5xx)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _server_message(response: httpx.Response) -> str:
    """The error text of a failed response, from its JSON body when it has one."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        err = body.get("error", body.get("detail", body))
        if isinstance(err, dict):
            err = err.get("message", err)
        return str(err)[:500]
    return str(body)[:500]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return min(float(value), MAX_RETRY_AFTER_S) if value is not None else None
    except ValueError:
        return None


class OpenAIReceiver:
    """A Receiver served over the OpenAI chat-completions API.

    Args:
        model: The model name the server expects in the request's ``model``
            field.
        base_url: The API root, e.g. ``"http://127.0.0.1:8000/v1"``; requests go
            to ``{base_url}/chat/completions``.
        api_key: Bearer token; defaults to the environment variable named by
            ``api_key_env``, else ``"EMPTY"`` (what local servers accept).
        api_key_env: Environment variable read when ``api_key`` is not given.
        max_concurrency: Most requests in flight at once.
        timeout_s: Timeout of one HTTP request, in seconds.
        max_retries: Retries after the first attempt on connection errors,
            timeouts, HTTP 429 and 5xx.  Other 4xx errors (unknown model, bad
            request) fail at once with the server's message.
        backoff_s: First retry delay; it doubles on every retry.  A 429's
            ``Retry-After`` header is honoured (up to 30 s).
        generation: Decoding settings: ``temperature`` 0 (greedy, the default)
            is sent as ``temperature: 0``; ``seed`` is sent when set.
        extra_body: Extra JSON fields merged into every request (e.g.
            ``{"top_k": 20}`` for vLLM).
        on_error: ``"flag"`` (default) returns a failed prompt as a Generation
            with ``text=""`` and ``error`` set (the game then raises or flags
            it, never scores it 0); ``"raise"`` raises ReceiverError instead.
        max_new_tokens: Shortcut that overrides ``generation.max_new_tokens``.
        temperature: Shortcut that overrides ``generation.temperature``.
        top_p: Shortcut that overrides ``generation.top_p``.
        seed: Shortcut that overrides ``generation.seed``.
        name: Overrides the default name ``"openai:<model>@<base_url>"``.

    Raises:
        ConfigError: An argument is invalid (e.g. ``base_url`` not http(s)).

    Use it as a context manager, or call :meth:`close`, to close the
    connection pool.
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        generation: GenerationConfig | None = None,
        extra_body: Mapping[str, Any] | None = None,
        on_error: OnError = "flag",
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"OpenAIReceiver needs the server's model name, got {model!r}")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"base_url must start with http:// or https://, got {base_url!r}; "
                "e.g. 'http://127.0.0.1:8000/v1'"
            )
        base_url = base_url.rstrip("/")
        if base_url.endswith("/chat/completions"):
            raise ConfigError(
                f"base_url {base_url!r} is the endpoint, not the API root; "
                f"pass {base_url[: -len('/chat/completions')]!r}"
            )
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        if timeout_s <= 0:
            raise ConfigError(f"timeout_s must be > 0, got {timeout_s!r}")
        if backoff_s < 0:
            raise ConfigError(f"backoff_s must be >= 0, got {backoff_s!r}")
        if on_error not in ("flag", "raise"):
            raise ConfigError(f"on_error must be 'flag' or 'raise', got {on_error!r}")
        self.generation = GenerationConfig.merged(generation, max_new_tokens=max_new_tokens, temperature=temperature,
                                                  top_p=top_p, seed=seed)
        self.model = model
        self.base_url = base_url
        self.url = f"{base_url}/chat/completions"
        self.max_concurrency = max_concurrency
        self.timeout_s = float(timeout_s)
        self.max_retries = max_retries
        self.backoff_s = float(backoff_s)
        self.extra_body = dict(extra_body or {})
        self.on_error = on_error
        self.name = name or f"openai:{model}@{base_url}"
        key = api_key if api_key is not None else os.environ.get(api_key_env) or "EMPTY"
        self._client = httpx.Client(
            timeout=httpx.Timeout(self.timeout_s),
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
            headers={"Authorization": f"Bearer {key}"},
        )

    def __repr__(self) -> str:
        return (
            f"OpenAIReceiver(model={self.model!r}, base_url={self.base_url!r}, "
            f"max_concurrency={self.max_concurrency}, generation={self.generation})"
        )

    def __enter__(self) -> OpenAIReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def request_body(self, prompt: ChatPrompt) -> dict[str, Any]:
        """The JSON body sent for ``prompt``."""
        g = self.generation
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in prompt],
            "max_tokens": g.max_new_tokens,
            "temperature": g.temperature,
        }
        if not g.greedy:
            body["top_p"] = g.top_p
        if g.seed is not None:
            body["seed"] = g.seed
        body.update(self.extra_body)
        return body

    def generate(self, prompts: Sequence[ChatPrompt]) -> list[Generation]:
        """Answer every prompt, ``max_concurrency`` requests at a time.

        Args:
            prompts: Chat prompts (lists of ``{"role", "content"}`` messages).

        Returns:
            One Generation per prompt, in order; token counts come from the
            response's ``usage`` when the server reports it, and ``latency_s``
            is the prompt's wall time including any retries.

        Raises:
            ReceiverError: A prompt failed and ``on_error="raise"``.
        """
        validate_prompts(prompts, self.name)
        if not prompts:
            return []
        if self._client.is_closed:
            raise ReceiverError(f"{self.name} was closed; build a new OpenAIReceiver")
        workers = min(self.max_concurrency, len(prompts))
        if workers == 1:
            results = [self._one(p) for p in prompts]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bpa-openai") as pool:
                results = list(pool.map(self._one, prompts))
        if self.on_error == "raise":
            for i, g in enumerate(results):
                if g.error is not None:
                    raise ReceiverError(f"prompt {i}: {g.error}")
        return results

    def _one(self, prompt: ChatPrompt) -> Generation:
        body = self.request_body(prompt)
        t0 = time.perf_counter()
        attempt = 0
        while True:
            try:
                return self._post(body, t0)
            except _Fatal as e:
                return Generation(text="", latency_s=time.perf_counter() - t0, error=str(e))
            except _Transient as e:
                if attempt >= self.max_retries:
                    tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                    return Generation(
                        text="", latency_s=time.perf_counter() - t0, error=f"{e} (gave up after {tries})"
                    )
                delay = e.retry_after if e.retry_after is not None else self.backoff_s * 2**attempt
                time.sleep(delay)
                attempt += 1

    def _post(self, body: dict[str, Any], t0: float) -> Generation:
        try:
            response = self._client.post(self.url, json=body)
        except httpx.ConnectError as e:
            raise _Transient(
                f"cannot connect to {self.base_url} ({e}); start the OpenAI-compatible server "
                f"(e.g. `transformers serve <model> --port <port>`) or check base_url"
            ) from e
        except httpx.TimeoutException as e:
            raise _Transient(
                f"request to {self.url} timed out after {self.timeout_s:g} s ({type(e).__name__}); "
                "is the server overloaded? raise timeout_s or lower max_concurrency / max_new_tokens"
            ) from e
        except httpx.TransportError as e:
            raise _Transient(f"request to {self.url} failed: {type(e).__name__}: {e}") from e
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Transient(
                f"{self.url} answered HTTP {status}: {_server_message(response)}", retry_after=_retry_after(response)
            )
        if status >= 400:
            hint = {
                401: "; check the API key (api_key= or the environment variable)",
                403: "; check the API key's permissions",
                404: f"; check the model name {self.model!r} and that base_url ends in the API root (e.g. /v1)",
            }.get(status, f"; check the model name {self.model!r} and the request settings")
            raise _Fatal(f"{self.url} rejected the request with HTTP {status}: {_server_message(response)}{hint}")
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise _Fatal(
                f"{self.url} returned a malformed chat completion ({type(e).__name__}: {e}): "
                f"{response.text[:300]!r}; is base_url an OpenAI-compatible API root?"
            ) from e
        if text is None:
            raise _Fatal(
                f"{self.url} returned no message content (finish_reason={choice.get('finish_reason')!r})"
            )
        usage = data.get("usage") or {}
        return Generation(
            text=str(text),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            latency_s=time.perf_counter() - t0,
        )
