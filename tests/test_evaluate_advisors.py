"""bpa_gym.advisors: Advisors saved by agents/ppo_text.py and agents/trl_grpo.py load and write signals."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bpa_gym.advisors import (  # noqa: E402
    PPO_TINY_GPT2,
    DiscretePolicy,
    LibraryPrior,
    load_advisor,
    load_ppo_advisor,
)
from bpa_gym.errors import ConfigError  # noqa: E402
from bpa_gym.types import Item  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ITEMS = [Item(f"gsm8k/test/{i}", q, "1") for i, q in enumerate(
    ["What is 2+2?", "A train goes 60 km in 2 hours. How fast?", "Tom has 3 apples and eats 1. How many left?",
     "What is 10% of 50?"])]

pytestmark = pytest.mark.usefixtures("one_thread")


def _perturb(module: torch.nn.Module, seed: int = 123) -> None:
    """Move the weights away from their seeded init, as training would (so loading cannot pass by re-seeding)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


@pytest.fixture()
def ppo_checkpoint(gpt2_dir, tmp_path):
    """A ppo_text.py run folder written by its own save_checkpoint: a tiny random GPT-2, weights perturbed."""
    import gymnasium as gym

    import bpa_gym  # noqa: F401
    from agents import ppo_text as P

    args = P.Args(policy="random:tiny", tokenizer=str(gpt2_dir), max_signal_tokens=8, temperature=0.9,
                  prompt_template="Q: {question}\nHint:", progress=False)
    ac, tok = P.make_policy(args.policy, args.tokenizer, seed=0)
    ref = P.make_reference(ac)
    _perturb(ac)
    from bpa_gym.envs.llm_vector import BayesPersuasionLLMVectorEnv

    # ppo_text checkpoints the item streams of the vector env it steps (a text view of the env)
    venv = BayesPersuasionLLMVectorEnv.from_env(gym.make("BayesPersuasion-Identity-v0"), args.batch_size,
                                                signals="text")
    venv.reset(seed=0)
    optimizer = torch.optim.Adam(ac.parameters(), lr=1e-5)
    P.save_checkpoint(tmp_path, 7, ac, ref, optimizer, P.KLController(0.05, 6.0, 10000), venv, args)
    return tmp_path, ac, tok, args


def test_tiny_preset_matches_ppo_text():
    from agents import ppo_text as P

    assert PPO_TINY_GPT2 == P.TINY_GPT2


def test_ppo_checkpoint_loads_and_samples_as_ppo_text_does(ppo_checkpoint):
    from agents import ppo_text as P

    folder, ac, tok, args = ppo_checkpoint
    advisor = load_advisor(str(folder), options={"seed": 5, "batch_size": len(ITEMS)})
    assert advisor.description.startswith("PPO Advisor (random:tiny, iteration 7")
    saved = ac.lm.state_dict()
    for k, v in advisor.model.state_dict().items():
        assert torch.equal(v, saved[k]), k
    # the very signals ppo_text's own sampler writes from the same RNG state
    prompts = [args.prompt_template.format(question=it.question) for it in ITEMS]
    torch.manual_seed(5)
    expected = P.generate_signals(ac.lm, tok, prompts, args, P.stop_token_ids(tok, args.stop_at_newline),
                                  torch.device("cpu"))["signals"]
    got = advisor.signals(ITEMS)
    assert got == expected and all(isinstance(s, str) and "\n" not in s for s in got)
    assert advisor.signals(ITEMS) == got  # seeded: the same again
    assert load_ppo_advisor(folder / "checkpoint.pt", seed=6, batch_size=4).signals(ITEMS) != got


class Payload:
    """An arbitrary object: weights_only loading must refuse it."""


def test_ppo_checkpoint_with_a_pickled_object_is_refused(tmp_path):
    torch.save({"policy": {}, "args": {}, "payload": Payload()}, tmp_path / "checkpoint.pt")
    with pytest.raises(ConfigError, match="refusing to load"):
        load_advisor(str(tmp_path))


def test_trl_model_folder_loads_and_samples(gpt2_dir, tmp_path):
    pytest.importorskip("trl")
    from transformers import AutoModelForCausalLM, GenerationConfig

    from agents import trl_grpo as T

    args = T.Args(policy="random:tiny", tokenizer=str(gpt2_dir), output_dir=str(tmp_path))
    tok = T.load_tokenizer(args)
    folder = Path(T.build_policy(args, tok, str(tmp_path)))  # model.save_pretrained + tokenizer, as save_model
    advisor = load_advisor(str(folder), options={"seed": 3, "max_new_tokens": 8, "batch_size": 4})
    assert advisor.description.startswith("HF Advisor init_policy (gpt2)")
    got = advisor.signals(ITEMS)
    # what GRPO samples from the same prompts and RNG: the full softmax, stop at EOS, decoded completion
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    prompts = [T.DEFAULT_TEMPLATE.format(question=it.question) for it in ITEMS]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(3)
    out = model.generate(**enc, generation_config=GenerationConfig(
        do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=8, eos_token_id=[tok.eos_token_id],
        pad_token_id=tok.pad_token_id))
    expected = []
    for row in out[:, enc["input_ids"].shape[1]:]:
        hit = (row == tok.eos_token_id).nonzero()
        expected.append(tok.decode(row[: int(hit[0]) + 1] if len(hit) else row, skip_special_tokens=True))
    assert got == expected
    assert advisor.signals(ITEMS) == got


def test_untrained_lm_prior_is_seeded(gpt2_dir):
    opts = {"tokenizer": str(gpt2_dir), "prior_lm": "random:tiny", "max_new_tokens": 6}
    one = load_advisor("prior:lm", options={**opts, "seed": 1})
    assert one.description == "untrained gpt2 (random:tiny, random init seed 1)"
    first = one.signals(ITEMS)
    assert load_advisor("prior:lm", options={**opts, "seed": 1}).signals(ITEMS) == first
    assert load_advisor("prior:lm", options={**opts, "seed": 2}).signals(ITEMS) != first
    # 'prior' means the LM prior when the env has no library (text mode)
    assert load_advisor("prior", signal_library=None, options={**opts, "seed": 1}).signals(ITEMS) == first


def test_library_prior_is_uniform_and_seeded():
    library = ["", "a", "b", "c"]
    many = [Item(f"q/{i}", "?", "1") for i in range(4000)]
    draws = LibraryPrior(library, seed=0).indices(many)
    counts = np.bincount(draws, minlength=4)
    assert counts.sum() == 4000 and (abs(counts - 1000) < 100).all()
    assert LibraryPrior(library, seed=0).indices(many[:50]) == draws[:50]
    assert LibraryPrior(library, seed=1).indices(many[:50]) != draws[:50]


def test_discrete_policy_file(tmp_path):
    library = ["", "a", "b"]
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"format": "bpa-gym-discrete-advisor/v1", "signal_library": library,
                             "signal_index": 1, "signal_index_by_item": {"gsm8k/test/2": 2}}))
    assert load_advisor(str(f), signal_library=library).signals(ITEMS) == ["a", "a", "b", "a"]
    with pytest.raises(ConfigError, match="another signal library"):
        load_advisor(str(f), signal_library=["", "x", "y"])
    f.write_text(json.dumps({"format": "bpa-gym-discrete-advisor/v1", "signal_index_by_item": {"gsm8k/test/0": 1}}))
    with pytest.raises(ConfigError, match="no signal for item 'gsm8k/test/1'"):
        load_advisor(str(f), signal_library=library).signals(ITEMS)
    f.write_text(json.dumps({"signal_index": 1}))
    with pytest.raises(ConfigError, match="not a discrete-signal policy"):
        load_advisor(str(f), signal_library=library)
    with pytest.raises(ConfigError, match=r"integers in 0\.\.2"):
        DiscretePolicy(library, {"q": 3})


@pytest.mark.parametrize("spec, message", [
    ("index:9", r"integer in 0\.\.2"),
    ("prior:library", "takes free-text signals"),
    ("nope", "unknown advisor 'nope'"),
])
def test_bad_advisor_specs(spec, message):
    library = ["", "a", "b"] if spec != "prior:library" else None
    with pytest.raises(ConfigError, match=message):
        load_advisor(spec, signal_library=library)


def test_text_mode_evaluation_with_a_ppo_checkpoint(ppo_checkpoint, shared_data_dir, gpt2_dir, tmp_path):
    """The whole chain: a ppo_text checkpoint's signals, drawn once, played against two Receivers."""
    from bpa_gym.evaluation import evaluate
    from bpa_gym.receivers.scripted import ScriptedReceiver

    folder = ppo_checkpoint[0]
    receivers = [ScriptedReceiver(lambda m: "The answer is -1.", name="wrong"),
                 ScriptedReceiver(lambda m: "The answer is 18.", name="eighteen")]
    ev = evaluate("BayesPersuasion-GSM8K-v0", receivers, [str(folder)], n=4, signals="text",
                  data_dir=str(shared_data_dir), advisor_options={"tokenizer": str(gpt2_dir), "prior_lm": "random:tiny",
                                                                  "max_new_tokens": 6},
                  out_dir=tmp_path / "out", progress=False, cache=False)
    assert [c.condition for c in ev.cells] == ["none", "prior", str(folder)] * 2
    assert ev.conditions[1]["description"].startswith("untrained gpt2")
    assert all(c.accuracy == 0.0 for c in ev.cells if c.receiver == "wrong")
    # item 0 of the GSM8K test split has gold 18: that Receiver is right on it whatever the signal
    assert [c.per_item[0] for c in ev.cells if c.receiver == "eighteen"] == [True] * 3
    recorded = [json.loads(p.read_text()) for p in (tmp_path / "out" / "signals").glob("*.json")]
    ppo = next(r for r in recorded if r["condition"] == str(folder))
    assert ppo["signals"] == load_advisor(str(folder), options={"seed": 0, "max_signal_chars": 512}).signals(
        [Item(i, q, "") for i, q in zip(ppo["item_ids"], _questions(shared_data_dir, 4))])


def _questions(data_dir, n):
    from bpa_gym.tasks.gsm8k import GSM8KTask

    return [it.question for it in GSM8KTask(data_dir=data_dir).load("test")[:n]]
