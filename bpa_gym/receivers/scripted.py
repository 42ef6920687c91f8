"""A scripted Receiver: a deterministic test double for the game, envs and agents.

:class:`ScriptedReceiver` answers with a Python function instead of an LLM, and
records what it was asked, so tests can check prompts and batching without a
model.  It is public so downstream code can test against it too; it is not a
model of any real LLM's behaviour.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping, Sequence

from bpa_gym.errors import ConfigError
from bpa_gym.receivers import validate_prompts
from bpa_gym.types import ChatPrompt, FinishReason, Generation, Message

AnswerFn = Callable[[Sequence[Message]], str]
#: A fixed finish reason, or a function of (messages, response text) giving one.
FinishReasonSpec = FinishReason | None | Callable[[Sequence[Message], str], "FinishReason | None"]


def _words(prompt: Sequence[Message]) -> int:
    return sum(len(m["content"].split()) for m in prompt)


def _last_user_content(prompt: Sequence[Message]) -> str:
    for m in reversed(prompt):
        if m["role"] == "user":
            return m["content"]
    raise ConfigError("ScriptedReceiver.keyword_gated needs a prompt with a user message; this one has none")


class ScriptedReceiver:
    """A test double that answers each prompt with ``answer_fn(messages)``.

    Args:
        answer_fn: Maps one prompt's messages to the response text.
        fail_on: Optional predicate on a prompt's messages; where it is true,
            the prompt fails: its Generation has ``text=""`` and ``error`` set,
            as a real Receiver's failure would be reported.
        name: The Receiver's name.
        finish_reason: What every Generation reports as its ``finish_reason``:
            ``"stop"``, ``"length"`` or ``None`` (default: unknown), or a
            function ``(messages, text) -> reason`` (e.g. ``"length"`` for
            long answers, to test truncation handling).

    Attributes:
        prompts: Every prompt seen, in order, across all calls.
        calls: The batch size of every ``generate`` call, in order.

    Token counts are whitespace-separated word counts, a stand-in for tokens.

    Example:
        >>> r = ScriptedReceiver(lambda messages: "The answer is 4.")
        >>> [g.text for g in r.generate([[{"role": "user", "content": "2+2?"}]] * 2)]
        ['The answer is 4.', 'The answer is 4.']
        >>> r.calls
        [2]
        >>> cut = ScriptedReceiver(lambda m: "So far 3 + 4 =", finish_reason="length")
        >>> cut.generate([[{"role": "user", "content": "2+2?"}]])[0].finish_reason
        'length'
    """

    def __init__(
        self,
        answer_fn: AnswerFn,
        *,
        fail_on: Callable[[Sequence[Message]], bool] | None = None,
        name: str = "scripted",
        finish_reason: FinishReasonSpec = None,
    ) -> None:
        if not callable(answer_fn):
            raise ConfigError(f"ScriptedReceiver needs a callable answer_fn(messages) -> str, got {answer_fn!r}")
        if not (finish_reason in (None, "stop", "length") or callable(finish_reason)):
            raise ConfigError(
                f"ScriptedReceiver finish_reason must be 'stop', 'length', None or a function "
                f"(messages, text) -> reason, got {finish_reason!r}"
            )
        self.finish_reason = finish_reason
        self.answer_fn = answer_fn
        self.fail_on = fail_on
        self.name = name
        self.prompts: list[list[Message]] = []
        self.calls: list[int] = []

    @classmethod
    def keyword_gated(
        cls,
        keyword: str,
        answers: Mapping[str, str] | Callable[[str], str],
        *,
        wrong: str = "I don't know.",
        case_sensitive: bool = False,
        **kwargs: object,
    ) -> ScriptedReceiver:
        """A Receiver that answers correctly iff the signal contains ``keyword``.

        Args:
            keyword: The word that unlocks the right answer.
            answers: Either a mapping from question text to the response to give
                (the question whose text appears in the last user message is
                used, and the keyword is looked for in the rest of the message,
                i.e. the signal); or a function from the last user message to
                the response (the keyword is then looked for in the whole
                message, so the question itself must not contain it).
            wrong: The response when the keyword is absent.
            case_sensitive: Whether the keyword match is case-sensitive.
            **kwargs: Passed to the constructor (``fail_on``, ``name``).

        Returns:
            The Receiver.

        Example:
            >>> r = ScriptedReceiver.keyword_gated("carefully", {"What is 6*7?": "#### 42"})
            >>> ask = lambda text: r.generate([[{"role": "user", "content": text}]])[0].text
            >>> ask("What is 6*7?\\n\\nAdvice: think carefully")
            '#### 42'
            >>> ask("What is 6*7?")
            "I don't know."
        """
        if not keyword:
            raise ConfigError("keyword_gated needs a non-empty keyword")
        fold = (lambda s: s) if case_sensitive else str.casefold

        def answer(messages: Sequence[Message]) -> str:
            content = _last_user_content(messages)
            if isinstance(answers, Mapping):
                found = [q for q in answers if q and q in content]
                if not found:
                    raise ConfigError(
                        f"keyword_gated receiver got a prompt with none of its {len(answers)} questions: "
                        f"{content[:120]!r}; add this question to `answers`"
                    )
                question = max(found, key=len)
                rest = content.replace(question, "", 1)
                right = answers[question]
            else:
                rest, right = content, answers(content)
            return right if fold(keyword) in fold(rest) else wrong

        kwargs.setdefault("name", f"scripted:keyword={keyword}")
        return cls(answer, **kwargs)  # type: ignore[arg-type]

    def reset(self) -> None:
        """Forget the recorded prompts and calls."""
        self.prompts.clear()
        self.calls.clear()

    def generate(self, prompts: Sequence[ChatPrompt]) -> list[Generation]:
        """Answer every prompt with ``answer_fn`` (failing where ``fail_on`` says so)."""
        validate_prompts(prompts, self.name)
        self.calls.append(len(prompts))
        out = []
        for prompt in prompts:
            messages: list[Message] = [dict(m) for m in prompt]  # type: ignore[misc]
            self.prompts.append(messages)
            t0 = time.perf_counter()
            if self.fail_on is not None and self.fail_on(messages):
                out.append(Generation(text="", error=f"{self.name}: scripted failure (fail_on matched)"))
                continue
            text = self.answer_fn(messages)
            if not isinstance(text, str):
                raise ConfigError(f"{self.name}: answer_fn must return a str, got {type(text).__name__}")
            reason = self.finish_reason(messages, text) if callable(self.finish_reason) else self.finish_reason
            if reason not in (None, "stop", "length"):
                raise ConfigError(f"{self.name}: finish_reason function returned {reason!r}; "
                                  "return 'stop', 'length' or None")
            out.append(
                Generation(
                    text=text,
                    prompt_tokens=_words(messages),
                    completion_tokens=len(text.split()),
                    latency_s=time.perf_counter() - t0,
                    finish_reason=reason,
                )
            )
        return out
