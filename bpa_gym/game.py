"""The persuasion game core (no Gymnasium): item + signal -> Receiver -> reward.

:class:`PersuasionGame` binds a :class:`~bpa_gym.tasks.base.Task`, a
:class:`~bpa_gym.receivers.base.Receiver` and a
:class:`~bpa_gym.prompts.PromptTemplate`.  Its one batched call,
:meth:`PersuasionGame.play`, renders every (item, signal) pair, sends all of
them to the Receiver in one batch, and scores each answer.

How an answer is judged (every outcome has a ``status``, see
:data:`~bpa_gym.types.ParseStatus`):

* ``ok``: the task's scorer read an answer; reward 1.0 if correct, else 0.0.
* ``unparseable``: no answer could be read (reward 0.0, ``parse_reason`` says
  why).  This includes a scorer that raised on the response: one bad answer
  never loses the batch; the exception becomes the reason and a
  ``RuntimeWarning`` is issued, since it is a scorer bug.
* ``truncated``: the Receiver stopped at its length limit
  (``finish_reason == "length"``) and the scorer found no explicit
  final-answer marker (``Score.explicit`` is False: GSM8K's last-number
  fallback, or no answer at all).  Reward 0.0 and ``extracted=None``: a stray
  number from a cut-off response is never scored.  An explicit answer written
  before the cut is scored as usual.
* ``receiver_error``: the Receiver failed (raised, or flagged with reward NaN).

A task may also offer ``score_many(responses, items) -> list[Score]`` (HumanEval
does: it runs the code in parallel); :meth:`PersuasionGame.play` then scores a
batch in one call, with the same rules.
"""

from __future__ import annotations

import warnings
from typing import Literal, Sequence

from bpa_gym.errors import ConfigError, ReceiverError, SandboxError
from bpa_gym.prompts import PromptTemplate
from bpa_gym.receivers.base import Receiver
from bpa_gym.tasks.base import Task
from bpa_gym.types import Generation, Item, Outcome, Score

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
        batch_scores = self._judge_batch(items, generations) if on_error == "flag" or all(
            g.error is None for g in generations) else {}
        outcomes: list[Outcome] = []
        for k, (item, sig, gen) in enumerate(zip(items, signals, generations)):
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
                            gen.latency_s, gen.prompt_tokens, gen.completion_tokens, gen.error,
                            finish_reason=finish_reason(gen))
                )
                continue
            score = batch_scores[k] if k in batch_scores else self.judge(gen, item)
            correct = bool(score.correct) and score.status == "ok"
            outcomes.append(
                Outcome(item.id, sig, 1.0 if correct else 0.0, correct, gen.text if isinstance(gen.text, str) else "",
                        score.extracted, item.gold, score.status, gen.latency_s, gen.prompt_tokens,
                        gen.completion_tokens, parse_reason=score.reason, finish_reason=finish_reason(gen))
            )
        return outcomes

    def judge(self, generation: Generation, item: Item) -> Score:
        """Score one successful generation; never raises on what the Receiver wrote.

        The task's scorer is guarded: an exception from it (other than a
        :class:`ConfigError` about the item, a caller's mistake) becomes an
        ``unparseable`` score with the exception as its reason, and a
        ``RuntimeWarning``.  A generation cut at the length limit with no
        explicit answer is ``truncated`` (see the module docstring).

        Example:
            >>> from bpa_gym.tasks.gsm8k import GSM8KTask
            >>> from bpa_gym.receivers.scripted import ScriptedReceiver
            >>> task = GSM8KTask.__new__(GSM8KTask); task._data_dir, task._cache = None, {}
            >>> game = PersuasionGame(task, ScriptedReceiver(lambda m: ""))
            >>> item = Item("x", "q", "18")
            >>> game.judge(Generation("9 * 2 = 18", finish_reason="length"), item).status
            'truncated'
            >>> game.judge(Generation("The answer is 18. Check: 9", finish_reason="length"), item).correct
            True
        """
        text = generation.text
        if not isinstance(text, str):
            return Score(False, None, "unparseable", reason=(
                f"the Receiver returned {type(text).__name__}, not text"), explicit=False)
        try:
            score = self.task.score(text, item)
            if not isinstance(score, Score):
                raise TypeError(f"{type(self.task).__name__}.score returned {type(score).__name__}, not a Score")
        except (ConfigError, SandboxError):  # a caller's mistake / the sandbox broke: never a reward of 0
            raise
        except Exception as e:  # noqa: BLE001 - a scorer bug must not lose the batch
            reason = f"the scorer raised {type(e).__name__}: {str(e)[:200]}"
            warnings.warn(f"item {item.id}: {reason}; scored as unparseable (reward 0). Please report this "
                          "response to the task's author.", RuntimeWarning, stacklevel=3)
            return Score(False, None, "unparseable", reason=reason, explicit=False)
        return self._length_checked(generation, score)

    def _judge_batch(self, items: Sequence[Item], generations: Sequence[Generation]) -> dict[int, Score]:
        """Scores of the successful generations from the task's ``score_many`` (e.g. HumanEval runs code in parallel).

        Empty when the task has no ``score_many`` or it fails on the batch: :meth:`judge` then scores (and
        guards) each generation alone.  A :class:`ConfigError` or :class:`SandboxError` is raised.
        """
        score_many = getattr(self.task, "score_many", None)
        ok = [k for k, g in enumerate(generations) if g.error is None and isinstance(g.text, str)]
        if not callable(score_many) or len(ok) < 2:
            return {}
        try:
            scores = score_many([generations[k].text for k in ok], [items[k] for k in ok])
            if not isinstance(scores, list) or len(scores) != len(ok) or not all(isinstance(s, Score) for s in scores):
                return {}
        except (ConfigError, SandboxError):
            raise
        except Exception:  # noqa: BLE001 - judged one by one below, where the guard reports it
            return {}
        return {k: self._length_checked(generations[k], score) for k, score in zip(ok, scores)}

    @staticmethod
    def _length_checked(generation: Generation, score: Score) -> Score:
        """``score``, or ``truncated`` when the generation hit its length limit before an explicit answer."""
        if finish_reason(generation) == "length" and score.status != "truncated" and not (
                score.status == "ok" and score.explicit):
            return Score(False, None, "truncated", reason=(
                "the Receiver stopped at its length limit (finish_reason='length') before an explicit final "
                "answer" + (f"; the stray {score.extracted!r} is not read as one" if score.extracted else "")
            ), explicit=False)
        return score


def finish_reason(generation: Generation) -> str | None:
    """``generation.finish_reason`` when it is one of the known values, else ``None``."""
    reason = getattr(generation, "finish_reason", None)
    return reason if reason in ("stop", "length") else None
