"""The persuasion game core (no Gymnasium): item + signal -> Receiver -> reward.

:class:`PersuasionGame` binds a :class:`~bpa_gym.tasks.base.Task`, a
:class:`~bpa_gym.receivers.base.Receiver` and a
:class:`~bpa_gym.prompts.PromptTemplate`.  Its one batched call,
:meth:`PersuasionGame.play`, renders every (item, signal) pair, sends all of
them to the Receiver in one batch, and scores each answer.
"""

from __future__ import annotations

from typing import Literal, Sequence

from bpa_gym.errors import ConfigError, ReceiverError
from bpa_gym.prompts import PromptTemplate
from bpa_gym.receivers.base import Receiver
from bpa_gym.tasks.base import Task
from bpa_gym.types import Item, Outcome

OnError = Literal["raise", "flag"]


class PersuasionGame:
    """One Advisor-Receiver game on a task.

    Args:
        task: Item source and scorer.
        receiver: The black-box LLM that answers.
        template: How item + signal are rendered; defaults to the task's.
        on_error: ``"raise"`` (default) raises :class:`ReceiverError` when the
            Receiver fails on any prompt; ``"flag"`` returns that outcome with
            ``status="receiver_error"`` and ``reward=nan``.  A failure is never
            scored as a wrong answer.
    """

    def __init__(
        self,
        task: Task,
        receiver: Receiver,
        template: PromptTemplate | None = None,
        on_error: OnError = "raise",
    ) -> None:
        if on_error not in ("raise", "flag"):
            raise ConfigError(f"on_error must be 'raise' or 'flag', got {on_error!r}")
        if not callable(getattr(receiver, "generate", None)):
            raise ConfigError(
                f"receiver {receiver!r} has no generate(prompts) method; pass a bpa_gym Receiver "
                "or a spec string such as 'smollm2'"
            )
        self.task = task
        self.receiver = receiver
        self.template = template or task.default_template()
        self.on_error = on_error

    def play(self, items: Sequence[Item], signals: Sequence[str], *, on_error: OnError | None = None) -> list[Outcome]:
        """Play every (item, signal) pair with one batched Receiver call.

        Args:
            items: The information items.
            signals: One signal text per item ("" = no signal).
            on_error: Overrides the game's ``on_error`` for this call; a
                trainer that needs a reward for every pair passes ``"raise"``.

        Returns:
            One :class:`~bpa_gym.types.Outcome` per pair, in order.

        Raises:
            ReceiverError: The Receiver failed and ``on_error`` is ``"raise"``.
        """
        if on_error is None:
            on_error = self.on_error
        elif on_error not in ("raise", "flag"):
            raise ConfigError(f"on_error must be 'raise' or 'flag', got {on_error!r}")
        if len(items) != len(signals):
            raise ConfigError(f"play() got {len(items)} items but {len(signals)} signals; pass one signal per item")
        if not items:
            return []
        for s in signals:
            if not isinstance(s, str):
                raise ConfigError(f"signals must be strings, got {type(s).__name__}: {s!r}")
        prompts = [self.template.render(item, sig) for item, sig in zip(items, signals)]
        generations = self.receiver.generate(prompts)
        if len(generations) != len(prompts):
            raise ReceiverError(
                f"receiver {self.receiver.name} returned {len(generations)} generations for {len(prompts)} prompts"
            )
        outcomes: list[Outcome] = []
        for item, sig, gen in zip(items, signals, generations):
            if gen.error is not None:
                if on_error == "raise":
                    raise ReceiverError(
                        f"receiver {self.receiver.name} failed on item {item.id}: {gen.error}. "
                        "Fix the Receiver (is the server up? the model id right?); a failure is never scored 0"
                        + ("" if on_error != self.on_error else
                           ", or pass on_error='flag' to record failures as NaN-reward outcomes") + "."
                    )
                outcomes.append(
                    Outcome(item.id, sig, float("nan"), False, "", None, item.gold, "receiver_error",
                            gen.latency_s, gen.prompt_tokens, gen.completion_tokens, gen.error)
                )
                continue
            score = self.task.score(gen.text, item)
            outcomes.append(
                Outcome(item.id, sig, 1.0 if score.correct else 0.0, score.correct, gen.text, score.extracted,
                        item.gold, score.status, gen.latency_s, gen.prompt_tokens, gen.completion_tokens)
            )
        return outcomes
