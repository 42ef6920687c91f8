"""TRL helpers: turn a persuasion game into a prompt dataset and a reward function.

The Advisor is a causal LM trained with TRL (``GRPOTrainer``, ``RLOOTrainer``,
...).  Its prompt shows an information item (never the gold answer); its
completion is the free-text *signal*; the reward is the Receiver's correctness
when it answers the item with that signal in context.

* :func:`advisor_dataset` builds a ``datasets.Dataset`` with a ``prompt``
  column (plain text, or conversational with ``conversational=True``) and an
  ``item_id`` column, which TRL hands to reward functions as a keyword.
* :func:`make_reward_fn` builds a reward function with TRL's signature
  ``reward_fn(prompts, completions, item_id, **kwargs) -> list[float]``.  It
  plays the whole batch against the Receiver in **one** batched call (a step
  of the env's vector env, :class:`bpa_gym.envs.llm_vector.BatchPlayer`; a bare
  game's :meth:`~bpa_gym.game.PersuasionGame.play`), and a Receiver failure raises
  :class:`~bpa_gym.errors.ReceiverError`: it is never scored 0.

Both accept a Gymnasium env made with ``signals="text"`` (wrapped or not), the
unwrapped :class:`~bpa_gym.envs.llm.BayesPersuasionLLMEnv`, or a
:class:`~bpa_gym.game.PersuasionGame`.  Only ``datasets`` is needed, and only
by :func:`advisor_dataset` (``pip install "bpa-gym[hub]"``); TRL itself is not
imported here.

Example:
    >>> import gymnasium as gym, bpa_gym
    >>> from bpa_gym.integrations.trl import advisor_dataset, make_reward_fn
    >>> env = gym.make("BayesPersuasion-GSM8K-v0", receiver="smollm2", signals="text",
    ...                data_dir="../shared/data", subset_size=64)  # doctest: +SKIP
    >>> from trl import GRPOConfig, GRPOTrainer  # doctest: +SKIP
    >>> trainer = GRPOTrainer(model="gpt2", reward_funcs=make_reward_fn(env),
    ...                       train_dataset=advisor_dataset(env),
    ...                       args=GRPOConfig("out", max_completion_length=32))  # doctest: +SKIP
    >>> trainer.train()  # doctest: +SKIP
"""

from __future__ import annotations

import string
from typing import Annotated, Any, Callable, Iterable, Mapping, Sequence

from pydantic import Field

from bpa_gym.common.validation import Arguments, Bool, NonNegativeInt, PositiveInt, Str, check
from bpa_gym.errors import BPAError, ConfigError
from bpa_gym.types import Item, Outcome

__all__ = [
    "DEFAULT_TEMPLATE",
    "PersuasionReward",
    "advisor_dataset",
    "completion_text",
    "make_reward_fn",
]

#: The default Advisor prompt.  Fields: ``{question}`` (required) and ``{item_id}``.
DEFAULT_TEMPLATE = "Question: {question}\nAdvice:"

_TEMPLATE_FIELDS = frozenset({"question", "item_id"})


class _DatasetArgs(Arguments):
    template: Str = DEFAULT_TEMPLATE
    split: Annotated[Str | None, Field(description="a string or None")] = None
    limit: Annotated[PositiveInt | None, Field(description="an integer >= 1 or None")] = None
    conversational: Bool = False
    system: Annotated[Str | None, Field(description="a string or None")] = None


class _RewardArgs(Arguments):
    name: Str = "receiver_correct"
    max_signal_chars: Annotated[NonNegativeInt | None, Field(description="an integer >= 0 or None")] = None
    log_metrics: Bool = True


# ---------------------------------------------------------------- resolution
def _unwrap(obj: Any) -> Any:
    """The object that carries ``.game``: a Gymnasium wrapper's ``unwrapped`` env, or ``obj``."""
    if hasattr(obj, "game"):
        return obj
    inner = getattr(obj, "unwrapped", None)
    if inner is not None and hasattr(inner, "game"):
        return inner
    return obj


def _game_of(env_or_game: Any):
    """The :class:`~bpa_gym.game.PersuasionGame` behind an env (wrapped or not) or a game."""
    obj = _unwrap(env_or_game)
    game = getattr(obj, "game", None)
    if game is None and callable(getattr(obj, "play", None)):
        game = obj
    if game is None or not callable(getattr(game, "play", None)):
        raise ConfigError(
            f"expected a bpa_gym LLM env (e.g. gym.make('BayesPersuasion-GSM8K-v0', signals='text', ...)) "
            f"or a PersuasionGame, got {type(env_or_game).__name__}"
        )
    return game


def _check_text_mode(env_or_game: Any) -> None:
    obj = _unwrap(env_or_game)
    mode = getattr(obj, "signal_mode", None)
    if mode is not None and mode != "text":
        raise ConfigError(
            f"the env uses signals={mode!r}; the TRL integration trains a text Advisor: make the env with signals='text'"
        )


def _env_items(obj: Any) -> list[Item] | None:
    """The item list of an env (wrapped or not), or ``None`` for a game or another object."""
    obj = _unwrap(obj)
    items = getattr(obj, "items", None)
    return list(items) if hasattr(obj, "game") and items is not None and not callable(items) else None


def _is_item_seq(obj: Any) -> bool:
    return isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)) and all(isinstance(x, Item) for x in obj)


def _items_of(source: Any, split: str | None = None) -> list[Item]:
    """Items from an env (its items, or ``split`` of its task), a game (``split`` of its task) or a list of Items."""
    if _is_item_seq(source):
        if split is not None:
            raise ConfigError("split= only applies to an env or a game; you passed the items themselves")
        return list(source)
    env_items = _env_items(source)
    if env_items is not None and (split is None or split == getattr(_unwrap(source), "split", None)):
        return env_items
    game = _game_of(source)
    if split is None:
        raise ConfigError(
            "a PersuasionGame has no item list of its own: pass split= (e.g. 'train') or the items themselves"
        )
    return list(game.task.load(split))


# ------------------------------------------------------------------- dataset
def _check_template(template: str) -> None:
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as e:
        raise ConfigError(f"advisor template {template!r} is not a valid format string: {e}") from None
    unknown = fields - _TEMPLATE_FIELDS
    if unknown:
        hint = " (the gold answer is never shown to the Advisor)" if "gold" in unknown else ""
        raise ConfigError(
            f"advisor template uses unknown field(s) {sorted(unknown)}{hint}; available: {sorted(_TEMPLATE_FIELDS)}"
        )
    if "question" not in fields:
        raise ConfigError(f"advisor template {template!r} must contain {{question}}")


def advisor_dataset(
    env_or_game_items: Any,
    template: str = DEFAULT_TEMPLATE,
    split: str | None = None,
    limit: int | None = None,
    *,
    conversational: bool = False,
    system: str | None = None,
):
    """A TRL prompt dataset for the Advisor: one row per information item.

    Args:
        env_or_game_items: A ``signals="text"`` env (wrapped or not; its items
            are used), a :class:`~bpa_gym.game.PersuasionGame` (needs
            ``split``), or a sequence of :class:`~bpa_gym.types.Item`.
        template: The Advisor's prompt; ``{question}`` is required and
            ``{item_id}`` is available.  The gold answer is never shown.
        split: Load this split of the env's (or game's) task instead of the
            env's own items.
        limit: Keep only the first ``limit`` items.
        conversational: ``False``: ``prompt`` is the plain text; ``True``:
            ``prompt`` is a chat prompt ``[{"role": "user", "content": ...}]``
            (for chat-tuned Advisors; TRL applies the tokenizer's chat template).
        system: An optional system message (conversational only).

    Returns:
        A ``datasets.Dataset`` with columns ``prompt`` and ``item_id``.

    Raises:
        ConfigError: Bad template, empty item list, duplicate item ids, ...
        ImportError: ``datasets`` is not installed.

    Example:
        >>> from bpa_gym.types import Item
        >>> ds = advisor_dataset([Item("q/0", "What is 6*7?", "42")])
        >>> ds.column_names, ds[0]["prompt"]
        (['prompt', 'item_id'], 'Question: What is 6*7?\\nAdvice:')
        >>> advisor_dataset([Item("q/0", "What is 6*7?", "42")], conversational=True)[0]["prompt"]
        [{'role': 'user', 'content': 'Question: What is 6*7?\\nAdvice:'}]
    """
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"advisor_dataset needs the 'datasets' package ({e}); install it with: pip install \"bpa-gym[hub]\""
        ) from e
    args = check(_DatasetArgs, "advisor_dataset", template=template, split=split, limit=limit,
                 conversational=conversational, system=system)
    template, system = args.template, args.system
    _check_template(template)
    if system is not None and not args.conversational:
        raise ConfigError("system= only applies to conversational=True prompts")
    if not _is_item_seq(env_or_game_items):
        _check_text_mode(env_or_game_items)
    items = _items_of(env_or_game_items, args.split)
    if args.limit is not None:
        items = items[: args.limit]
    if not items:
        raise ConfigError("advisor_dataset got no items")
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ConfigError(f"item ids must be unique (the reward function looks items up by id); duplicates: {dup}")
    texts = [template.format(question=it.question, item_id=it.id) for it in items]
    if args.conversational:
        head = [{"role": "system", "content": system}] if system else []
        prompts: list[Any] = [head + [{"role": "user", "content": t}] for t in texts]
    else:
        prompts = texts
    return datasets.Dataset.from_dict({"prompt": prompts, "item_id": ids})


# -------------------------------------------------------------------- reward
def completion_text(completion: Any) -> str:
    """The signal text of one TRL completion.

    A plain completion is a string; a conversational one is a list of
    messages, whose assistant contents are joined (a content may itself be a
    list of ``{"type": "text", "text": ...}`` parts).

    Example:
        >>> completion_text(" think step by step")
        ' think step by step'
        >>> completion_text([{"role": "assistant", "content": "check units"}])
        'check units'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    if isinstance(completion, Sequence) and not isinstance(completion, bytes):
        parts: list[str] = []
        for m in completion:
            if not isinstance(m, Mapping) or "content" not in m:
                raise ConfigError(f"conversational completion has a malformed message {m!r:.80}")
            if m.get("role", "assistant") != "assistant":
                continue
            content = m["content"]
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, Sequence):
                parts.extend(p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text")
            elif content is not None:
                raise ConfigError(f"message content must be text, got {type(content).__name__}")
        return "\n".join(parts)
    raise ConfigError(
        f"a completion must be a string or a list of chat messages, got {type(completion).__name__}: {completion!r:.80}"
    )


class PersuasionReward:
    """TRL reward function: the Receiver's correctness for each (item, signal) pair.

    Built by :func:`make_reward_fn`; see there.  Call signature (TRL's):
    ``reward(prompts, completions, item_id, **kwargs) -> list[float]``.

    Attributes:
        __name__: The name TRL logs rewards under (``rewards/<name>/mean``).
        game: The :class:`~bpa_gym.game.PersuasionGame` played.
        calls: Number of batches scored so far (one Receiver call each).
        last_outcomes: The :class:`~bpa_gym.types.Outcome` list of the last batch.
        last_stats: ``reward``, ``accuracy``, ``parse_rate`` (share of
            answers the scorer could read), ``signal_chars`` (mean signal
            length) and ``batch_size`` of the last batch.
    """

    def __init__(
        self,
        game: Any,
        items: Iterable[Item] | None = None,
        *,
        name: str = "receiver_correct",
        max_signal_chars: int | None = None,
        log_metrics: bool = True,
        fallback_task: Any = None,
        env: Any = None,
    ) -> None:
        args = check(_RewardArgs, "make_reward_fn", name=name, max_signal_chars=max_signal_chars,
                     log_metrics=log_metrics)
        if not args.name.isidentifier():
            raise ConfigError(f"reward name must be a Python identifier (TRL logs it), got {name!r}")
        self.game = game
        self._player = None
        if env is not None:  # play through the env's public vector path (one Receiver batch per call)
            from bpa_gym.envs.llm_vector import BatchPlayer

            self._player = BatchPlayer(env, "text")
        self.__name__ = args.name
        self.__qualname__ = args.name
        self.max_signal_chars = args.max_signal_chars
        self.log_metrics = args.log_metrics
        self._task = fallback_task
        if isinstance(items, (str, bytes, Mapping)):
            raise ConfigError(f"items must be a sequence of bpa_gym.types.Item, got {type(items).__name__}")
        items = list(items or ())
        bad = [type(it).__name__ for it in items if not isinstance(it, Item)][:3]
        if bad:
            raise ConfigError(f"items must be bpa_gym.types.Item objects; got {bad}")
        self._by_id: dict[str, Item] = {}
        for it in items:
            self._by_id.setdefault(it.id, it)
        self._loaded_all_splits = False
        self.calls = 0
        self.last_outcomes: list[Outcome] = []
        self.last_stats: dict[str, float] = {}

    def __repr__(self) -> str:
        receiver = getattr(getattr(self.game, "receiver", None), "name", "?")
        return f"PersuasionReward(name={self.__name__!r}, receiver={receiver!r}, items={len(self._by_id)})"

    # ---------------------------------------------------------------- items
    def _lookup(self, item_ids: Sequence[Any]) -> list[Item]:
        missing = [i for i in dict.fromkeys(item_ids) if i not in self._by_id]
        if missing and self._task is not None and not self._loaded_all_splits:
            # The dataset may come from another split of the same task (advisor_dataset(env, split=...)).
            self._loaded_all_splits = True
            for split in getattr(self._task, "splits", ()):
                try:
                    for it in self._task.load(split):
                        self._by_id.setdefault(it.id, it)
                except BPAError:  # a split whose data is missing (DataNotFoundError) contributes no ids
                    continue
            missing = [i for i in missing if i not in self._by_id]
        if missing:
            known = list(self._by_id)[:3]
            raise ConfigError(
                f"{self.__name__}: unknown item id(s) {missing[:5]!r} ({len(missing)} in all); this reward function "
                f"knows {len(self._by_id)} items (e.g. {known!r}). Build the dataset from the same env "
                "(advisor_dataset(env)) or pass items= to make_reward_fn"
            )
        return [self._by_id[i] for i in item_ids]

    # ----------------------------------------------------------------- call
    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], item_id: Sequence[Any] | None = None, **kwargs: Any
    ) -> list[float]:
        if item_id is None:
            raise ConfigError(
                f"{self.__name__} needs the item_id column: TRL passes dataset columns as keywords, so build the "
                "dataset with bpa_gym.integrations.trl.advisor_dataset (columns 'prompt' and 'item_id')"
            )
        item_ids = list(item_id)
        if len(item_ids) != len(completions):
            raise ConfigError(f"{self.__name__} got {len(completions)} completions but {len(item_ids)} item ids")
        items = self._lookup(item_ids)
        signals = [completion_text(c) for c in completions]
        if self.max_signal_chars is not None:
            signals = [s[: self.max_signal_chars] for s in signals]
        # One batched Receiver call (through the env's vector env when there is one); a failure raises
        # ReceiverError even where the game flags failures.
        if self._player is not None:
            outcomes = self._player(items, signals)
        else:
            outcomes = self.game.play(items, signals, on_error="raise")
        self.calls += 1
        self.last_outcomes = outcomes
        n = len(outcomes)
        rewards = [float(o.reward) for o in outcomes]
        self.last_stats = {
            "reward": sum(rewards) / n if n else float("nan"),
            "accuracy": sum(o.correct for o in outcomes) / n if n else float("nan"),
            "parse_rate": sum(o.status == "ok" for o in outcomes) / n if n else float("nan"),
            "signal_chars": sum(len(s) for s in signals) / n if n else float("nan"),
            "batch_size": float(n),
        }
        log_metric: Callable[[str, float], None] | None = kwargs.get("log_metric")
        if self.log_metrics and callable(log_metric) and n:
            for key in ("parse_rate", "signal_chars"):
                log_metric(f"{self.__name__}/{key}", self.last_stats[key])
        return rewards


def make_reward_fn(
    env_or_game: Any,
    items: Iterable[Item] | None = None,
    *,
    name: str = "receiver_correct",
    max_signal_chars: int | None = None,
    log_metrics: bool = True,
) -> PersuasionReward:
    """A TRL reward function that plays each batch of signals against the Receiver.

    Args:
        env_or_game: A ``signals="text"`` env (wrapped or not) or a
            :class:`~bpa_gym.game.PersuasionGame`.
        items: The items the dataset's ``item_id`` column may name; default:
            the env's items.  Ids not found there are looked up once in every
            split of the game's task before an error is raised.
        name: The function's ``__name__``; TRL logs ``rewards/<name>/mean``.
        max_signal_chars: Truncate each signal to this many characters.
        log_metrics: Report ``<name>/parse_rate`` and ``<name>/signal_chars``
            through TRL's ``log_metric`` hook when the trainer offers it.

    Returns:
        A :class:`PersuasionReward`: ``reward(prompts, completions, item_id,
        **kwargs) -> list[float]`` with one 0.0/1.0 per completion.  Each call
        makes exactly one batched Receiver call.  A Receiver failure raises
        :class:`~bpa_gym.errors.ReceiverError`; an unknown item id raises
        :class:`~bpa_gym.errors.ConfigError`.

    Example:
        >>> from bpa_gym import PersuasionGame
        >>> from bpa_gym.receivers import ScriptedReceiver
        >>> from bpa_gym.tasks.gsm8k import GSM8KTask
        >>> from bpa_gym.types import Item
        >>> items = [Item("q/0", "What is 6*7?", "42")]
        >>> receiver = ScriptedReceiver.keyword_gated("carefully", {"What is 6*7?": "The answer is 42."})
        >>> reward = make_reward_fn(PersuasionGame(GSM8KTask(), receiver), items=items)
        >>> reward(["..."] * 2, [" go carefully", " guess"], item_id=["q/0", "q/0"])
        [1.0, 0.0]
        >>> reward.__name__, receiver.calls
        ('receiver_correct', [2])
    """
    game = _game_of(env_or_game)
    _check_text_mode(env_or_game)
    if items is None:
        items = _env_items(env_or_game) or []
    base = _unwrap(env_or_game)
    from bpa_gym.envs.llm import BayesPersuasionLLMEnv

    return PersuasionReward(
        game, items, name=name, max_signal_chars=max_signal_chars, log_metrics=log_metrics,
        fallback_task=getattr(game, "task", None), env=base if isinstance(base, BayesPersuasionLLMEnv) else None,
    )
