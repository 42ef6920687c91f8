"""TRL integration: the reward function and dataset helpers, and the GRPO/RLOO agent (agents/trl_grpo.py).

CPU only: a tiny random-init GPT-2 Advisor (the real GPT-2 tokenizer, no
weights) against test-double Receivers.  The slow test plays a few GRPO steps
against the real SmolLM2 Receiver.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import gymnasium as gym  # noqa: E402

import bpa_gym  # noqa: E402,F401
from bpa_gym.errors import ConfigError, ReceiverError  # noqa: E402
from bpa_gym.integrations.trl import advisor_dataset, completion_text, make_reward_fn  # noqa: E402
from bpa_gym.types import Generation  # noqa: E402

pytest.importorskip("trl")
pytest.importorskip("datasets")

ENV_ID = "BayesPersuasion-GSM8K-v0"
REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA_DIR = SHARED / "data"
GPT2_DIR = SHARED / "models" / "gpt2"

needs_assets = pytest.mark.skipif(
    not (DATA_DIR / "gsm8k").is_dir() or not (GPT2_DIR / "tokenizer.json").is_file(),
    reason=f"offline assets not found under {SHARED}",
)
pytestmark = needs_assets


# ------------------------------------------------------------------ test doubles
class KeywordReceiver:
    """Counting test-double Receiver: answers an item's gold iff its *signal* contains ``keyword``.

    The signal is read honestly out of the rendered prompt: the env's template is
    rendered with a sentinel signal to learn the text around the signal, so the
    keyword is looked for in the signal only (never in the question or the
    template).  ``fail_if`` in a signal makes that prompt fail (Generation.error).
    """

    name = "test:keyword"

    def __init__(self, items, template, keyword: str | None = "carefully", fail_if: str | None = None):
        self.items = list(items)
        self.template = template
        self.keyword = keyword
        self.fail_if = fail_if
        self.calls: list[int] = []
        self.seen: list[tuple[str, str]] = []  # (item id, signal) per prompt

    def parse(self, messages):
        content = messages[-1]["content"]
        found = [it for it in self.items if it.question in content]
        assert found, f"prompt holds no known question: {content[:100]!r}"
        item = max(found, key=lambda it: len(it.question))
        pre, suf = self.template.render(item, "\x00")[-1]["content"].split("\x00")
        if content.startswith(pre) and content.endswith(suf) and len(content) >= len(pre) + len(suf):
            return item, content[len(pre) : len(content) - len(suf)]
        assert content == self.template.render(item, "")[-1]["content"], "unexpected prompt layout"
        return item, ""

    def generate(self, prompts):
        self.calls.append(len(prompts))
        out = []
        for messages in prompts:
            item, signal = self.parse(messages)
            self.seen.append((item.id, signal))
            if self.fail_if is not None and self.fail_if in signal:
                out.append(Generation(text="", error="test double: simulated outage"))
            elif self.keyword is not None and self.keyword in signal:
                out.append(Generation(f"Let me check. The answer is {item.gold}."))
            else:
                out.append(Generation("The answer is -1."))
        return out


def _task():
    from bpa_gym.tasks.gsm8k import GSM8KTask

    return GSM8KTask(data_dir=DATA_DIR)


def _make_env(receiver_factory, n=8, **kw):
    task = _task()
    items = task.load("test")[:n]
    receiver = receiver_factory(items, task.default_template())
    env = gym.make(ENV_ID, receiver=receiver, data_dir=DATA_DIR, subset_size=n, signals="text", **kw)
    return env, receiver


@pytest.fixture()
def text_env():
    env, receiver = _make_env(lambda items, tpl: KeywordReceiver(items, tpl, keyword="carefully", fail_if="OUTAGE"))
    yield env, receiver
    env.close()


@pytest.fixture(scope="module")
def agent():
    """agents/trl_grpo.py as a module, registered in sys.modules (tyro reads the Args docstrings from it)."""
    import sys

    spec = importlib.util.spec_from_file_location("bpa_agents_trl_grpo", REPO / "agents" / "trl_grpo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- reward fn
def test_reward_fn_one_receiver_call_per_batch_and_right_items(text_env):
    env, receiver = text_env
    items = env.unwrapped.items
    reward = make_reward_fn(env)
    assert reward.__name__ == "receiver_correct"
    ids = [items[i].id for i in (0, 0, 3, 3, 5, 2)]
    completions = [" go carefully", " guess", " work carefully!", "no", "", " carefully"]
    rewards = reward(prompts=["p"] * 6, completions=completions, item_id=ids, trainer_state=None)
    assert receiver.calls == [6], "exactly one batched Receiver call per reward-fn call"
    assert rewards == [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    # each completion was played on its own item, in order
    assert [i for i, _ in receiver.seen] == ids
    assert [s for _, s in receiver.seen] == [c.strip() for c in completions]
    assert [o.item_id for o in reward.last_outcomes] == ids
    assert reward.calls == 1 and reward.last_stats["parse_rate"] == 1.0 and reward.last_stats["reward"] == 0.5
    reward(prompts=["p"], completions=["x"], item_id=[ids[0]])
    assert receiver.calls == [6, 1]


def test_reward_fn_conversational_completions(text_env):
    env, receiver = text_env
    ids = [it.id for it in env.unwrapped.items[:2]]
    completions = [[{"role": "assistant", "content": "think carefully"}], [{"role": "assistant", "content": "hmm"}]]
    assert make_reward_fn(env)(prompts=[[{"role": "user", "content": "q"}]] * 2, completions=completions, item_id=ids) == [1.0, 0.0]
    assert receiver.seen[-2:] == [(ids[0], "think carefully"), (ids[1], "hmm")]
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "a"}]}]) == "a"
    with pytest.raises(ConfigError):
        completion_text(42)


def test_reward_fn_raises_on_receiver_failure_never_zero(text_env):
    env, receiver = text_env
    reward = make_reward_fn(env)
    ids = [it.id for it in env.unwrapped.items[:3]]
    with pytest.raises(ReceiverError, match="failed"):
        reward(prompts=["p"] * 3, completions=["carefully", "OUTAGE carefully", "x"], item_id=ids)
    # a game that flags failures (NaN outcomes) still does not produce a reward
    from bpa_gym.game import PersuasionGame

    game = env.unwrapped.game
    flagging = PersuasionGame(game.task, receiver, game.template, on_error="flag")
    with pytest.raises(ReceiverError):
        make_reward_fn(flagging, items=env.unwrapped.items)(prompts=["p"], completions=["OUTAGE"], item_id=ids[:1])


def test_reward_fn_unknown_item_id_and_missing_column(text_env):
    env, _ = text_env
    reward = make_reward_fn(env)
    with pytest.raises(ConfigError, match="unknown item id.*'nope/1'"):
        reward(prompts=["p"], completions=["x"], item_id=["nope/1"])
    with pytest.raises(ConfigError, match="item_id"):
        reward(prompts=["p"], completions=["x"])
    # ids of another split of the same task are found (dataset built with split=...)
    ds = advisor_dataset(env, split="train", limit=2)
    assert [it.id for it in reward._lookup(ds["item_id"])] == ds["item_id"]


def test_reward_fn_needs_text_env():
    env = gym.make(ENV_ID, receiver=KeywordReceiver([], None), data_dir=DATA_DIR, subset_size=2)  # discrete
    with pytest.raises(ConfigError, match="signals='text'"):
        make_reward_fn(env)
    with pytest.raises(ConfigError):
        make_reward_fn(object())


def test_advisor_dataset_has_no_gold(text_env):
    env, _ = text_env
    items = env.unwrapped.items
    ds = advisor_dataset(env)
    assert ds.column_names == ["prompt", "item_id"]
    assert ds["item_id"] == [it.id for it in items]
    for row, it in zip(ds, items):
        assert row["prompt"] == f"Question: {it.question}\nAdvice:"
        assert "####" not in row["prompt"] and it.meta["solution"] not in row["prompt"]
    with pytest.raises(ConfigError, match="gold"):
        advisor_dataset(env, template="{question} (answer: {gold})")
    with pytest.raises(ConfigError, match="question"):
        advisor_dataset(env, template="Advice:")
    conv = advisor_dataset(env, conversational=True, system="Advise briefly.", limit=3)
    assert len(conv) == 3 and conv[0]["prompt"][0] == {"role": "system", "content": "Advise briefly."}
    assert conv[0]["prompt"][1]["role"] == "user" and items[0].question in conv[0]["prompt"][1]["content"]
    short = advisor_dataset(env, template="{question:.20}|", limit=1)  # format specs truncate the question
    assert short[0]["prompt"] == items[0].question[:20] + "|"
    assert advisor_dataset(env, split="train", limit=4)["item_id"] == [f"gsm8k/train/{i}" for i in range(4)]
    with pytest.raises(ConfigError, match="split"):
        advisor_dataset(env.unwrapped.game)


# ---------------------------------------------------------------------- agent
def test_agent_args_cli(agent, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    a = agent.parse_args(["--policy", "random:tiny", "--beta", "0.1", "--no-cuda", "--subset-size", "None", "--algo", "rloo"])
    assert (a.policy, a.beta, a.cuda, a.subset_size, a.algo) == ("random:tiny", 0.1, False, None, "rloo")
    assert agent.parse_args([]) == agent.Args()
    with pytest.raises(SystemExit) as e:
        agent.parse_args(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out  # tyro: the fields' docstrings are the help texts
    assert "--num-generations" in out and "Signals sampled per item" in out and "--no-cuda" in out
    with pytest.raises(SystemExit) as e:
        agent.parse_args(["--algo", "ppo"])
    assert e.value.code != 0


def _sample_signals(model, tokenizer, prompts, n_per_prompt, max_new_tokens, seed=0):
    import torch

    torch.manual_seed(seed)
    batch = tokenizer([p for p in prompts for _ in range(n_per_prompt)], return_tensors="pt", padding=True)
    model.eval()
    with torch.no_grad():
        out = model.generate(**batch, do_sample=True, top_k=0, top_p=1.0, temperature=1.0,
                             max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
    new = out[:, batch["input_ids"].shape[1]:]
    return tokenizer.batch_decode(new, skip_special_tokens=True), new


def test_grpo_learns_keyword(agent, tmp_path, one_thread):
    """GRPO lifts the Receiver's accuracy from the random-policy level to near 1.

    The Receiver test double answers correctly iff the signal contains a
    keyword.  The keyword is picked from what the random-init Advisor already
    writes (a word piece in ~30% of its signals), so the task is learnable in a
    few steps and the baseline is measured, not assumed.
    """
    import numpy as np
    from transformers import AutoModelForCausalLM, GPT2Config

    env, receiver = _make_env(lambda items, tpl: KeywordReceiver(items, tpl, keyword=None))
    cfg_dir = tmp_path / "cfg"
    # initializer_range 0.3 (not 0.02): a random policy that is not uniform over 50k tokens, so that it
    # writes some word pieces often (a uniform one would need far more steps to find any keyword).
    GPT2Config(vocab_size=50257, n_layer=2, n_head=2, n_embd=64, n_positions=256, initializer_range=0.3).save_pretrained(cfg_dir)
    L = 6
    args = agent.Args(
        policy=f"random:{cfg_dir}", tokenizer=str(GPT2_DIR), output_dir=str(tmp_path / "run"), seed=1,
        prompt_template="{question:.40}\nAdvice:", total_steps=16, learning_rate=3e-2,
        per_device_train_batch_size=16, num_generations=8, max_completion_length=L,
        save_steps=1000, track=False, cuda=False,
    )
    trainer = agent.make_trainer(args, env=env)
    tok = trainer.processing_class
    prompts = list(trainer.train_dataset["prompt"])

    init = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "init_policy")
    texts, ids = _sample_signals(init, tok, prompts, 8, L)
    pieces = {tok.decode([t]).strip() for t in ids.flatten().tolist()}
    rates = {p: float(np.mean([p in s for s in texts])) for p in pieces if len(p) >= 2 and p.isalpha()}
    ok = {p: r for p, r in rates.items() if 0.1 <= r <= 0.5}
    assert ok, f"the random policy writes no word piece in 10-50% of signals: {sorted(rates.items(), key=lambda kv: -kv[1])[:5]}"
    keyword, before = min(ok.items(), key=lambda kv: (abs(kv[1] - 0.3), kv[0]))
    receiver.keyword = keyword

    trainer.train()
    logged = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    assert len(logged) == 16
    first, last = float(np.mean(logged[:3])), float(np.mean(logged[-4:]))
    after_texts, _ = _sample_signals(trainer.model.cpu(), tok, prompts, 8, L, seed=1)
    after = float(np.mean([keyword in s for s in after_texts]))
    print(f"\nkeyword={keyword!r}: sampled accuracy before {before:.2f} -> after {after:.2f}; "
          f"logged reward first-3 {first:.2f} -> last-4 {last:.2f}; rewards {[round(r, 2) for r in logged]}")
    assert set(receiver.calls) == {16}, "one Receiver call per generation batch"
    assert last >= max(0.7, first + 0.3), f"reward did not rise: {logged}"
    assert after >= max(0.7, before + 0.3), f"sampled accuracy {before:.2f} -> {after:.2f}"


def _scalar_tags(logdir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for f in logdir.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(f))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    return tags


def test_beta_with_random_init_and_resume(agent, tmp_path, one_thread):
    """beta > 0 needs the reference model rebuilt from a folder (saved first); resume restores the step."""
    import torch

    env, receiver = _make_env(lambda items, tpl: KeywordReceiver(items, tpl, keyword="e"), n=4)
    out = tmp_path / "run"
    common = dict(policy="random:tiny", tokenizer=str(GPT2_DIR), output_dir=str(out), seed=3,
                  prompt_template="{question:.30}\nAdvice:", per_device_train_batch_size=4, num_generations=2,
                  max_completion_length=4, beta=0.05, learning_rate=1e-3, save_steps=2, logging_steps=1, cuda=False)
    trainer = agent.make_trainer(agent.Args(total_steps=2, **common), env=env)
    init_dir = out / "init_policy"
    assert (init_dir / "config.json").is_file() and (init_dir / "tokenizer.json").is_file()
    assert not list(out.glob(".init_policy*"))  # written atomically: no temp folder left behind
    assert trainer.ref_model is not None
    assert Path(trainer.ref_model.config._name_or_path).resolve() == init_dir.resolve()
    init_sd = trainer.ref_model.state_dict()
    for k, v in trainer.model.state_dict().items():  # reference == initial policy (same weights, not a fresh init)
        if k in init_sd:
            assert torch.equal(v.cpu(), init_sd[k].cpu()), k
    trainer.train()
    assert trainer.state.global_step == 2 and (out / "checkpoint-2").is_dir()
    assert all(math.isfinite(h["kl"]) for h in trainer.state.log_history if "kl" in h)
    assert "charts/reward" in _scalar_tags(out / "tb") and "train/reward" in _scalar_tags(out / "tb")

    calls_before = len(receiver.calls)
    args2 = agent.Args(total_steps=3, resume="latest", **common)
    assert Path(agent.resume_target(args2)).name == "checkpoint-2"
    trainer2 = agent.make_trainer(args2, env=env)
    trainer2.train(resume_from_checkpoint=agent.resume_target(args2))
    assert trainer2.state.global_step == 3
    new_steps = [h["step"] for h in trainer2.state.log_history if "reward" in h]
    assert new_steps[-1] == 3 and 3 in new_steps and len(receiver.calls) - calls_before == 1, "resumed at step 2"
    with pytest.raises(ConfigError, match="no checkpoint"):
        agent.resume_target(agent.Args(resume="latest", **{**common, "output_dir": str(tmp_path / "empty")}))


def test_rloo_one_step(agent, tmp_path, one_thread):
    env, receiver = _make_env(lambda items, tpl: KeywordReceiver(items, tpl, keyword="e"), n=2)
    args = agent.Args(algo="rloo", policy="random:tiny", tokenizer=str(GPT2_DIR), output_dir=str(tmp_path / "run"),
                      prompt_template="{question:.30}\nAdvice:", per_device_train_batch_size=4, num_generations=2,
                      max_completion_length=4, total_steps=1, beta=0.05, save_steps=1000, track=False, cuda=False)
    trainer = agent.make_trainer(args, env=env)
    assert type(trainer).__name__ == "RLOOTrainer"
    trainer.train()
    assert trainer.state.global_step == 1 and receiver.calls == [4]


@pytest.mark.slow
def test_smoke_grpo_smollm2(agent, tmp_path, one_thread):
    """A few GRPO steps end to end against the real SmolLM2 Receiver."""
    pytest.importorskip("bpa_gym.receivers.smollm2")
    out = tmp_path / "run"
    trainer = agent.main([
        "--policy", "random:tiny", "--tokenizer", str(GPT2_DIR), "--output-dir", str(out), "--no-cuda",
        "--data-dir", str(DATA_DIR), "--split", "test", "--subset-size", "4", "--receiver", "smollm2",
        "--receiver-max-new-tokens", "32", "--per-device-train-batch-size", "4", "--num-generations", "2",
        "--max-completion-length", "8", "--total-steps", "2", "--save-steps", "1000",
    ])
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    assert trainer.state.global_step == 2 and len(rewards) == 2 and all(0.0 <= r <= 1.0 for r in rewards)
    outcomes = trainer.bpa_reward_fn.last_outcomes
    # every play is scored (a Receiver failure would have raised); "truncated": cut at 32 tokens before an answer
    assert len(outcomes) == 4 and all(o.status in ("ok", "unparseable", "truncated") for o in outcomes), \
        [(o.status, o.parse_reason) for o in outcomes]
    assert trainer.bpa_env.unwrapped.receiver.name != "test:keyword"
    assert (out / "final" / "config.json").is_file() and "charts/reward" in _scalar_tags(out / "tb")
