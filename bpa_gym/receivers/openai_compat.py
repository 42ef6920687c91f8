"""A Receiver that calls an OpenAI-compatible chat-completions server.

Works with vLLM, SGLang, llama.cpp's server, ``transformers serve`` and the
OpenAI API itself: every prompt is one ``POST {base_url}/chat/completions``.

Retries are `tenacity <https://tenacity.readthedocs.io>`_ on an ``httpx``
async client (a private event loop on a background thread, so ``generate`` is
an ordinary blocking call, also inside Jupyter):

* every attempt has a whole-request deadline (``timeout_s``, from connecting to
  the last byte; a server trickling one byte a second cannot hold it longer)
  and every prompt an overall one (``deadline_s``, retries and waits included);
* connection errors, timeouts, HTTP 408, 429 and 5xx are retried, waiting
  "full jitter" exponential backoff (uniform in ``[0, backoff_s * 2**k]``, at
  most ``max_backoff_s``), or the server's ``Retry-After`` (seconds or an HTTP
  date; negative, ``nan`` or unreadable values are ignored; capped at
  ``max_retry_after_s``);
* a ``Retry-After`` pauses *every* request to that Receiver, and at most
  ``max_concurrency`` requests are in flight, so retries do not pile more load
  onto an overloaded server.

Why tenacity on httpx rather than the ``openai`` client: the ``openai`` client
has no whole-request deadline either (its timeout is httpx's per-read one), it
ignores ``Retry-After`` above 60 s instead of capping it, and it hides the
status and body that the error messages here quote.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import os
import random
import threading
import time
import weakref
from typing import Any, Awaitable, Callable, Literal, Mapping, Sequence, TypeVar

import httpx
import tenacity

from bpa_gym.common.validation import (
    Arguments,
    Bool,
    NonEmptyStr,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Str,
    check,
)
from bpa_gym.errors import ConfigError, ReceiverError
from bpa_gym.receivers import validate_prompts
from bpa_gym.receivers.base import GenerationConfig, neutralise_prompt
from bpa_gym.types import ChatPrompt, FinishReason, Generation

OnError = Literal["flag", "raise"]
T = TypeVar("T")

#: Default longest wait honoured from a server's ``Retry-After`` header, in seconds.
MAX_RETRY_AFTER_S = 30.0
#: HTTP statuses worth retrying: request timeout, rate limit, server errors.
RETRYABLE_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))


class _Fatal(Exception):
    """A failure that retrying cannot fix (4xx other than 408/429, malformed reply)."""


class _Transient(Exception):
    """A failure worth retrying (connection, timeout, 408, 429, 5xx)."""

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


def parse_retry_after(value: str | None, cap_s: float, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value, or ``None`` when it says nothing usable.

    Accepts delay-seconds (RFC 9110; fractions too) and HTTP dates.  Negative,
    ``nan``, infinite and unreadable values are ignored (``None``: the caller
    falls back to its own backoff); the result is at most ``cap_s``.

    Example:
        >>> [parse_retry_after(v, 30) for v in ("2", "0.5", "-5", "nan", "inf", "soon", None, "1e9")]
        [2.0, 0.5, None, None, None, None, None, 30]
        >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 30, now=1445412470.0)
        10.0
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, cap_s)


def _usage_count(value: Any) -> int | None:
    """A token count from the server's ``usage`` (untrusted): a non-negative int, else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _finish_reason(value: Any) -> FinishReason | None:
    """The server's ``finish_reason`` mapped to ``"length"`` (cut at max_tokens) or ``"stop"`` (anything else)."""
    if value is None:
        return None
    return "length" if str(value).lower() in ("length", "max_tokens") else "stop"


class _OpenAIArgs(Arguments):
    model: NonEmptyStr
    base_url: NonEmptyStr
    api_key: Str | None = None
    api_key_env: NonEmptyStr = "OPENAI_API_KEY"
    max_concurrency: PositiveInt = 8
    timeout_s: PositiveFloat = 60.0
    deadline_s: PositiveFloat | None = None
    max_retries: NonNegativeInt = 3
    backoff_s: NonNegativeFloat = 0.5
    max_backoff_s: NonNegativeFloat = 30.0
    max_retry_after_s: NonNegativeFloat = MAX_RETRY_AFTER_S
    generation: GenerationConfig | None = None
    extra_body: Mapping[str, Any] | None = None
    on_error: OnError = "flag"
    neutralise_control_tokens: Bool = True
    name: Str | None = None


class _LoopThread:
    """A private asyncio event loop on a daemon thread: lets a blocking ``generate`` drive async httpx."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bpa-openai-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


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
        max_concurrency: Most requests in flight at once (retries included).
        timeout_s: Deadline of one attempt, from connecting to the last byte of
            the reply, in seconds.
        deadline_s: Deadline of one prompt, all attempts and waits included;
            ``None`` (default) is ``(max_retries + 1) * timeout_s`` plus the
            waits.  No wait starts that would end past it.
        max_retries: Retries after the first attempt on connection errors,
            timeouts, HTTP 408, 429 and 5xx.  Other 4xx errors (unknown model,
            bad request) fail at once with the server's message.
        backoff_s: Scale of the jittered exponential backoff: retry ``k``
            (from 0) waits a uniform random time in ``[0, backoff_s * 2**k]``.
        max_backoff_s: Longest backoff wait.
        max_retry_after_s: Longest wait honoured from a ``Retry-After``
            header (longer ones are cut to it).
        generation: Decoding settings: ``temperature`` 0 (greedy, the default)
            is sent as ``temperature: 0``; ``seed`` is sent when set.
        extra_body: Extra JSON fields merged into every request (e.g.
            ``{"top_k": 20}`` for vLLM).
        on_error: ``"flag"`` (default) returns a failed prompt as a Generation
            with ``text=""`` and ``error`` set (the game then raises or flags
            it, never scores it 0); ``"raise"`` raises ReceiverError instead.
        neutralise_control_tokens: Break control-token strings (``<|im_end|>``
            and the other shapes in
            :data:`~bpa_gym.receivers.base.CONTROL_TEXT_PATTERN`) in message
            contents with a zero-width space, so a signal cannot forge chat
            turns when the server applies its chat template (default True).
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
        deadline_s: float | None = None,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_retry_after_s: float = MAX_RETRY_AFTER_S,
        generation: GenerationConfig | None = None,
        extra_body: Mapping[str, Any] | None = None,
        on_error: OnError = "flag",
        neutralise_control_tokens: bool = True,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        name: str | None = None,
    ) -> None:
        args = check(
            _OpenAIArgs, "OpenAIReceiver", model=model, base_url=base_url, api_key=api_key, api_key_env=api_key_env,
            max_concurrency=max_concurrency, timeout_s=timeout_s, deadline_s=deadline_s, max_retries=max_retries,
            backoff_s=backoff_s, max_backoff_s=max_backoff_s, max_retry_after_s=max_retry_after_s,
            generation=generation, extra_body=extra_body, on_error=on_error,
            neutralise_control_tokens=neutralise_control_tokens, name=name,
        )
        if not args.model.strip():
            raise ConfigError(f"OpenAIReceiver needs the server's model name, got {model!r}")
        if not args.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"base_url must start with http:// or https://, got {base_url!r}; "
                "e.g. 'http://127.0.0.1:8000/v1'"
            )
        base_url = args.base_url.rstrip("/")
        if base_url.endswith("/chat/completions"):
            raise ConfigError(
                f"base_url {base_url!r} is the endpoint, not the API root; "
                f"pass {base_url[: -len('/chat/completions')]!r}"
            )
        self.generation = GenerationConfig.merged(args.generation, max_new_tokens=max_new_tokens,
                                                  temperature=temperature, top_p=top_p, seed=seed)
        self.model = args.model
        self.base_url = base_url
        self.url = f"{base_url}/chat/completions"
        self.max_concurrency = args.max_concurrency
        self.timeout_s = args.timeout_s
        self.deadline_s = args.deadline_s
        self.max_retries = args.max_retries
        self.backoff_s = args.backoff_s
        self.max_backoff_s = args.max_backoff_s
        self.max_retry_after_s = args.max_retry_after_s
        self.extra_body = dict(args.extra_body or {})
        self.on_error = args.on_error
        self.neutralise_control_tokens = args.neutralise_control_tokens
        self.name = args.name or f"openai:{self.model}@{base_url}"
        self._key = args.api_key if args.api_key is not None else os.environ.get(args.api_key_env) or "EMPTY"
        self._closed = False
        self._loop: _LoopThread | None = None
        self._client: httpx.AsyncClient | None = None
        self._pause_until = 0.0  # loop time before which no request starts (a server's Retry-After)
        #: The wait function (a coroutine function of seconds); tests replace it to record waits.
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self._finalizer: weakref.finalize | None = None
        self._gate: asyncio.Semaphore | None = None
        self._start_lock = threading.Lock()

    @property
    def identity(self) -> dict[str, Any]:
        """What determines the answers: the model name, the server and the generation settings."""
        return {
            "class": type(self).__qualname__,
            "model": self.model,
            "base_url": self.base_url,
            "generation": self.generation.as_dict(),
            "extra_body": self.extra_body,
            "neutralise_control_tokens": self.neutralise_control_tokens,
        }

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
        """Close the connection pool and stop the background event loop."""
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()

    @property
    def is_closed(self) -> bool:
        return self._closed

    def _start(self) -> _LoopThread:
        with self._start_lock:  # generate() may be called from several threads at once: one loop, one client
            return self._start_locked()

    def _start_locked(self) -> _LoopThread:
        if self._loop is None:
            loop = _LoopThread()
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_s),
                limits=httpx.Limits(max_connections=self.max_concurrency,
                                    max_keepalive_connections=self.max_concurrency),
                headers={"Authorization": f"Bearer {self._key}"},
            )
            self._loop, self._client = loop, client
            self._finalizer = weakref.finalize(self, _shutdown, loop, client)
        return self._loop

    def request_body(self, prompt: ChatPrompt) -> dict[str, Any]:
        r"""The JSON body sent for ``prompt`` (message contents neutralised, see ``neutralise_control_tokens``).

        Example:
            >>> r = OpenAIReceiver("m", "http://127.0.0.1:1/v1", max_new_tokens=8)
            >>> r.request_body([{"role": "user", "content": "x<|im_end|>"}])["messages"][0]["content"]
            'x<\u200b|im_end|>'
        """
        g = self.generation
        messages = (neutralise_prompt(prompt) if self.neutralise_control_tokens
                    else [{"role": m["role"], "content": m["content"]} for m in prompt])
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
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
            response's ``usage`` when the server reports it, ``finish_reason``
            from the server's (``"length"`` when cut at ``max_new_tokens``),
            and ``latency_s`` is the prompt's wall time including any retries.

        Raises:
            ReceiverError: A prompt failed and ``on_error="raise"``.
        """
        validate_prompts(prompts, self.name)
        if not prompts:
            return []
        if self._closed:
            raise ReceiverError(f"{self.name} was closed; build a new OpenAIReceiver")
        bodies = [self.request_body(p) for p in prompts]
        results = self._start().run(self._generate_all(bodies))
        if self.on_error == "raise":
            for i, g in enumerate(results):
                if g.error is not None:
                    raise ReceiverError(f"prompt {i}: {g.error}")
        return results

    async def _generate_all(self, bodies: list[dict[str, Any]]) -> list[Generation]:
        # One gate per Receiver (made on its loop): concurrent generate() calls share max_concurrency.
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.max_concurrency)
        gate = self._gate
        return list(await asyncio.gather(*(self._one(body, gate) for body in bodies)))

    def _wait_s(self, state: tenacity.RetryCallState) -> float:
        """The server's Retry-After when it gave one, else full-jitter exponential backoff."""
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return exc.retry_after
        ceiling = min(self.max_backoff_s, self.backoff_s * 2.0 ** (state.attempt_number - 1))
        return random.uniform(0.0, ceiling)

    async def _pause(self, seconds: float) -> None:
        await self._sleep(seconds)

    async def _one(self, body: dict[str, Any], gate: asyncio.Semaphore) -> Generation:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        deadline_s = self.deadline_s
        stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(self.max_retries + 1)
        if deadline_s is not None:
            stop = stop | tenacity.stop_before_delay(deadline_s)
        attempts = 0

        async def attempt() -> Generation:
            nonlocal attempts
            attempts += 1
            async with gate:
                pause = self._pause_until - loop.time()
                if pause > 0:  # the server asked every client to back off
                    await self._sleep(pause)
                timeout = self.timeout_s
                if deadline_s is not None:
                    timeout = min(timeout, deadline_s - (loop.time() - t0))
                    if timeout <= 0:
                        raise _Transient(f"request to {self.url} ran past its deadline_s={deadline_s:g} s")
                try:
                    return await asyncio.wait_for(self._post(body, t0, loop), timeout)
                except asyncio.TimeoutError as e:
                    raise _Transient(
                        f"request to {self.url} timed out after {timeout:g} s (the whole request, "
                        "not one read); is the server overloaded? raise timeout_s or lower "
                        "max_concurrency / max_new_tokens"
                    ) from e

        retrying = tenacity.AsyncRetrying(
            stop=stop,
            wait=self._wait_s,
            retry=tenacity.retry_if_exception_type(_Transient),
            sleep=self._pause,
            reraise=True,
        )
        try:
            return await retrying(attempt)
        except _Fatal as e:
            return Generation(text="", latency_s=loop.time() - t0, error=str(e))
        except _Transient as e:
            tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
            return Generation(text="", latency_s=loop.time() - t0, error=f"{e} (gave up after {tries})")

    async def _post(self, body: dict[str, Any], t0: float, loop: asyncio.AbstractEventLoop) -> Generation:
        assert self._client is not None
        try:
            response = await self._client.post(self.url, json=body)
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
        if status in RETRYABLE_STATUS:
            retry_after = parse_retry_after(response.headers.get("retry-after"), self.max_retry_after_s)
            if retry_after is not None:
                self._pause_until = max(self._pause_until, loop.time() + retry_after)
            raise _Transient(f"{self.url} answered HTTP {status}: {_server_message(response)}", retry_after=retry_after)
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
        if not isinstance(choice, dict):
            raise _Fatal(f"{self.url} returned a malformed chat completion: {response.text[:300]!r}")
        if text is None:
            raise _Fatal(
                f"{self.url} returned no message content (finish_reason={choice.get('finish_reason')!r})"
            )
        usage = data.get("usage") if isinstance(data, dict) else None
        usage = usage if isinstance(usage, dict) else {}
        return Generation(
            text=str(text),
            prompt_tokens=_usage_count(usage.get("prompt_tokens")),
            completion_tokens=_usage_count(usage.get("completion_tokens")),
            latency_s=loop.time() - t0,
            finish_reason=_finish_reason(choice.get("finish_reason")),
        )


def _shutdown(loop: _LoopThread, client: httpx.AsyncClient) -> None:
    """Close the client on its loop and stop the loop (also run when a Receiver is garbage-collected)."""
    if not loop.loop.is_closed() and loop.thread.is_alive():
        try:
            loop.run(client.aclose())
        except Exception:  # noqa: BLE001 - best effort at shutdown
            pass
    loop.stop()
