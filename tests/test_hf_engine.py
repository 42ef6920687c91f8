"""HFReceiver's decoding engines, thread handling and CPU bfloat16.

Fast tests use a random 2-layer GPT-2 with the real GPT-2 tokenizer; the ``slow`` ones the real SmolLM2.
"""

from __future__ import annotations

import logging

import pytest

from bpa_gym.errors import ConfigError, ReceiverError

torch = pytest.importorskip("torch")

QUESTIONS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "What is 2+3?",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?",
    "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total does it take?",
    "Hi",
    "James writes a 3-page letter to 2 different friends twice a week. How many pages does he write a year?",
]


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


PROMPTS = [user(q) for q in QUESTIONS]


@pytest.fixture(scope="module")
def tiny_gpt2(gpt2_dir):
    """A random-init 2-layer GPT-2 (sdpa attention) and the real GPT-2 tokenizer."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(gpt2_dir)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=512, vocab_size=len(tokenizer)))
    return model.eval(), tokenizer


def _hf(tiny_gpt2, **kwargs):
    from bpa_gym.receivers import HFReceiver

    model, tokenizer = tiny_gpt2
    kwargs.setdefault("max_new_tokens", 10)
    return HFReceiver(model, tokenizer=tokenizer, **kwargs)


def _fields(gens):
    return [(g.text, g.prompt_tokens, g.completion_tokens, g.finish_reason, g.error) for g in gens]


@pytest.fixture()
def early_eos(tiny_gpt2):
    """Declare the 5th greedy token of prompt 2 an EOS token, so rows finish at different steps (or never)."""
    model, tokenizer = tiny_gpt2
    r = _hf(tiny_gpt2)
    ids = torch.tensor([tokenizer(r.render(PROMPTS[2]))["input_ids"]])
    token = int(model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.eos_token_id)[0, -1])
    assert token != tokenizer.eos_token_id
    original = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [token, tokenizer.eos_token_id]
    yield token
    model.generation_config.eos_token_id = original


# --------------------------------------------------------------------------- threads


@pytest.fixture()
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _threads_seen_by_forward(receiver):
    """Run ``generate`` and return the torch thread counts the model's forward passes ran with."""
    seen: list[int] = []
    handle = receiver.model.register_forward_hook(lambda *a: seen.append(torch.get_num_threads()))
    try:
        receiver.generate(PROMPTS[:2])
    finally:
        handle.remove()
    assert seen
    return set(seen)


@pytest.mark.parametrize("engine", ["generate", "continuous"])
def test_num_threads_applies_while_generating_then_is_restored(tiny_gpt2, two_threads, engine):
    r = _hf(tiny_gpt2, num_threads=1, engine=engine, max_new_tokens=3)
    assert torch.get_num_threads() == 2  # building the Receiver changes nothing process-wide
    assert _threads_seen_by_forward(r) == {1}  # the continuous engine's worker thread too
    assert torch.get_num_threads() == 2


def test_num_threads_is_restored_when_generate_fails(tiny_gpt2, two_threads, monkeypatch):
    r = _hf(tiny_gpt2, num_threads=1)

    def boom(**kwargs):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")

    monkeypatch.setattr(r.model, "generate", boom)
    with pytest.raises(RuntimeError, match="boom"):
        r.generate(PROMPTS[:1])
    assert torch.get_num_threads() == 2


def test_num_threads_none_leaves_torch_alone_and_auto_is_documented_constant(tiny_gpt2, two_threads):
    from bpa_gym.receivers.hf import AUTO_CPU_THREADS

    untouched = _hf(tiny_gpt2, num_threads=None, max_new_tokens=2)
    assert untouched.threads_while_generating() is None
    assert _threads_seen_by_forward(untouched) == {2}
    auto = _hf(tiny_gpt2, max_new_tokens=2)
    assert auto.num_threads == "auto" and auto.threads_while_generating() == AUTO_CPU_THREADS
    assert _threads_seen_by_forward(auto) == {AUTO_CPU_THREADS}
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_threads=0), "num_threads = 0"),
        (dict(num_threads=True), "num_threads = True"),
        (dict(num_threads="many"), "num_threads = 'many'"),
        (dict(num_threads=1.5), "num_threads = 1.5"),
        (dict(engine="vllm"), "engine = 'vllm'"),
        (dict(engine=None), "engine = None"),
    ],
)
def test_bad_engine_and_thread_arguments_are_config_errors(tiny_gpt2, kwargs, match):
    with pytest.raises(ConfigError, match=match) as info:
        _hf(tiny_gpt2, **kwargs)
    assert "'generate' or 'continuous'" in str(info.value) or "'auto' or None" in str(info.value)


# --------------------------------------------------------------------------- the continuous engine


def test_continuous_engine_equals_generate_engine(tiny_gpt2, early_eos):
    """Same texts, token counts and finish reasons, with rows finishing early and more prompts than slots."""
    plain = _hf(tiny_gpt2, batch_size=2).generate(PROMPTS)
    continuous = _hf(tiny_gpt2, batch_size=2, engine="continuous").generate(PROMPTS)
    assert _fields(continuous) == _fields(plain)
    assert continuous[2].completion_tokens == 5 and continuous[2].finish_reason == "stop"
    assert {g.finish_reason for g in continuous} == {"stop", "length"}
    assert len({g.completion_tokens for g in continuous}) > 2
    assert len({g.text for g in continuous}) > 2  # the order of the results is really checked
    assert all(g.latency_s > 0 for g in continuous)


def test_continuous_engine_restores_the_attention_implementation(gpt2_dir):
    """generate_batch switches eager attention to paged attention while it runs; the model gets its own back."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from bpa_gym.receivers import HFReceiver

    tokenizer = AutoTokenizer.from_pretrained(gpt2_dir)
    torch.manual_seed(1)
    config = GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=len(tokenizer), attn_implementation="eager")
    model = GPT2LMHeadModel(config).eval()
    assert model.config._attn_implementation == "eager"
    continuous = HFReceiver(model, tokenizer=tokenizer, engine="continuous", max_new_tokens=4).generate(PROMPTS[:3])
    assert model.config._attn_implementation == "eager"
    plain = HFReceiver(model, tokenizer=tokenizer, max_new_tokens=4).generate(PROMPTS[:3])
    assert _fields(continuous) == _fields(plain)


def test_continuous_engine_checks_the_context_length(tiny_gpt2):
    r = _hf(tiny_gpt2, engine="continuous", max_new_tokens=500)
    with pytest.raises(ReceiverError, match="do not fit"):
        r.generate([user("word " * 20)])


def test_continuous_engine_raises_on_non_finite_logits_without_engine_tracebacks(gpt2_dir, caplog, capsys):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from bpa_gym.receivers import HFReceiver

    tokenizer = AutoTokenizer.from_pretrained(gpt2_dir)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=len(tokenizer))).eval()
    with torch.no_grad():
        model.transformer.ln_f.weight.fill_(float("nan"))  # a corrupted checkpoint
    r = HFReceiver(model, tokenizer=tokenizer, engine="continuous", max_new_tokens=4)
    with caplog.at_level(logging.ERROR), pytest.raises(ReceiverError, match="non-finite logits") as info:
        r.generate(PROMPTS[:2])
    assert "corrupted" in str(info.value)
    assert "Traceback" not in capsys.readouterr().err  # the engine's own error log is muted: our error says it


def test_continuous_engine_failure_is_a_receiver_error(tiny_gpt2, monkeypatch):
    """A request the engine fails (here: a forward pass raising) is never returned as an empty answer."""
    r = _hf(tiny_gpt2, engine="continuous", max_new_tokens=3)

    def broken(*args, **kwargs):
        raise RuntimeError("kernel exploded")

    handle = r.model.register_forward_pre_hook(broken)
    try:
        with pytest.raises(ReceiverError, match="continuous-batching engine failed 2 of 2 requests.*kernel exploded"):
            r.generate(PROMPTS[:2])
    finally:
        handle.remove()


def test_continuous_engine_sampling_with_seed_is_reproducible(tiny_gpt2):
    sample = lambda seed: [  # noqa: E731
        g.text for g in _hf(tiny_gpt2, engine="continuous", temperature=1.0, seed=seed).generate(PROMPTS[:3])
    ]
    state = torch.get_rng_state()
    a, b, c = sample(5), sample(5), sample(6)
    assert torch.equal(state, torch.get_rng_state())
    assert a == b and a != c


def test_engine_is_part_of_identity_only_when_not_the_default(tiny_gpt2):
    assert "engine" not in _hf(tiny_gpt2).identity
    assert _hf(tiny_gpt2, engine="continuous").identity["engine"] == "continuous"


def test_continuous_engine_needs_generate_batch(tiny_gpt2):
    from bpa_gym.receivers import HFReceiver

    model, tokenizer = tiny_gpt2

    class Legacy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model
            self.config = model.config
            self.generation_config = model.generation_config

        def generate(self, **kwargs):
            return self.inner.generate(**kwargs)

    with pytest.raises(ConfigError, match="engine='continuous' needs transformers' continuous batching"):
        HFReceiver(Legacy(), tokenizer=tokenizer, engine="continuous")


# --------------------------------------------------------------------------- bfloat16 on CPU


def test_bfloat16_on_cpu_is_an_opt_in(tiny_gpt2):
    from transformers import GPT2Config, GPT2LMHeadModel

    from bpa_gym.receivers import HFReceiver

    _, tokenizer = tiny_gpt2
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=len(tokenizer))).eval()
    assert _hf((model, tokenizer)).dtype == torch.float32  # "auto" on CPU: float32
    r = HFReceiver(model, tokenizer=tokenizer, dtype="bfloat16", max_new_tokens=5)
    assert r.dtype == torch.bfloat16 and next(r.model.parameters()).dtype == torch.bfloat16
    assert r.identity["dtype"] == "bfloat16"
    gens = r.generate(PROMPTS[:3])
    assert [g.completion_tokens for g in gens] == [5, 5, 5] and all(g.text for g in gens)


# --------------------------------------------------------------------------- the real SmolLM2


def _gsm8k_prompts(shared_data_dir, n):
    from bpa_gym.tasks.gsm8k import GSM8KTask

    task = GSM8KTask(shared_data_dir)
    template = task.default_template()
    return [template.render(item, "") for item in task.load("test")[:n]]


@pytest.mark.slow
def test_smollm2_continuous_engine_answers_equal_generate_engine(smollm2_dir, shared_data_dir):
    """Greedy float32 answers on 8 GSM8K prompts: identical, with 4 slots for 8 rows (slots are refilled)."""
    from bpa_gym.receivers.smollm2 import SmolLM2Receiver

    prompts = _gsm8k_prompts(shared_data_dir, 8)
    plain = SmolLM2Receiver(max_new_tokens=96, batch_size=4)
    continuous = SmolLM2Receiver(max_new_tokens=96, batch_size=4, engine="continuous")
    continuous.model = plain.model  # one copy of the weights
    got, want = continuous.generate(prompts), plain.generate(prompts)
    assert _fields(got) == _fields(want)
    assert "stop" in {g.finish_reason for g in want}  # some rows really finish early


@pytest.mark.slow
def test_smollm2_bfloat16_runs_on_cpu(smollm2_dir, shared_data_dir):
    from bpa_gym.receivers.smollm2 import SmolLM2Receiver
    from bpa_gym.tasks.gsm8k import GSM8KTask

    r = SmolLM2Receiver(dtype="bfloat16", max_new_tokens=48, batch_size=4, device="cpu")
    assert r.dtype == torch.bfloat16 and r.identity["dtype"] == "bfloat16"
    gens = r.generate(_gsm8k_prompts(shared_data_dir, 4))
    assert all(g.error is None and g.text.strip() and g.finish_reason in ("stop", "length") for g in gens)
    assert all(1 <= g.completion_tokens <= 48 for g in gens)
    task = GSM8KTask(shared_data_dir)
    item = task.load("test")[0]
    assert task.score(gens[0].text, item).status in ("ok", "unparseable", "truncated")
