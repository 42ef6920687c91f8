"""Tests of agents/ppo_text.py: PPO for an LM Advisor on the free-text GSM8K env (CPU, tiny models)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gymnasium as gym
import numpy as np
import pytest
import torch

import bpa_gym
from bpa_gym.receivers import ScriptedReceiver
from bpa_gym.tasks.gsm8k import GSM8KTask

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA_DIR = SHARED / "data"
GPT2_DIR = SHARED / "models" / "gpt2"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

pytestmark = [
    pytest.mark.skipif(not (DATA_DIR / "gsm8k").is_dir() or not (GPT2_DIR / "tokenizer.json").is_file(),
                       reason=f"offline assets (gsm8k data, gpt2 tokenizer) not found under {SHARED}"),
    pytest.mark.usefixtures("one_thread"),  # tiny models: intra-op threads only add contention (6 s vs 50 s a run)
]

from agents import ppo_text as P  # noqa: E402

#: The Receiver test double answers correctly iff the signal contains this word.
#: " carefully" is one GPT-2 token (id 7773), and it is the only token whose text contains "carefully",
#: so "the signal contains the keyword" means "the Advisor sampled that token".
KEYWORD = " carefully"


def make_env(fail: bool = False, subset_size: int = 64, **env_kwargs):
    """The free-text GSM8K env with the library's keyword test double: it answers "The answer is <gold>."
    iff the signal contains the keyword, else "I don't know."; with ``fail`` every prompt fails."""
    items = GSM8KTask(data_dir=DATA_DIR).load("test")[:subset_size]
    receiver = ScriptedReceiver.keyword_gated(
        KEYWORD.strip(), {it.question: f"The answer is {it.gold}." for it in items},
        fail_on=(lambda messages: True) if fail else None, name="keyword-test-double")
    env = gym.make("BayesPersuasion-GSM8K-v0", receiver=receiver, signals="text", data_dir=str(DATA_DIR),
                   split="test", subset_size=subset_size, **env_kwargs)
    return env, receiver


def tiny_args(tmp_path: Path, **kw) -> P.Args:
    base = dict(device="cpu", save_dir=str(tmp_path / "run"), progress=False, policy="random:tiny",
                tokenizer=str(GPT2_DIR), max_prompt_tokens=64, max_signal_tokens=8, forward_batch_size=32)
    base.update(kw)
    return P.Args(**base)


@pytest.fixture(scope="module")
def tiny():
    ac, tok = P.make_policy("random:tiny", str(GPT2_DIR), seed=0)
    return ac, tok


def bias_towards(ac: P.ActorCritic, tok, word: str, target_p: float) -> float:
    """Bias a random-init tiny GPT-2 towards one token: ln_f.bias along the token's (tied) embedding.

    A random GPT-2 samples nearly uniformly from 50257 tokens, so no single word would ever appear.
    The final layer norm's bias is added to every final hidden state, so setting it to ``a * e/|e|``
    (``e`` = the word's embedding) raises that word's logit at every position.  ``a`` is found by
    bisection so that the word's mean probability per position is ``target_p``.
    """
    kw_id = tok(word)["input_ids"][0]
    ids = torch.tensor([tok("Question: Natalia sold clips to 48 of her friends in April, and then she sold "
                            "half as many clips in May.\nAdvice:")["input_ids"]])
    e = ac.lm.transformer.wte.weight[kw_id].detach()
    u = e / e.norm()
    lo, hi = 0.0, 200.0
    with torch.no_grad():
        for _ in range(30):
            a = (lo + hi) / 2
            ac.lm.transformer.ln_f.bias.copy_(a * u)
            p = ac.lm(ids).logits.softmax(-1)[0, :, kw_id].mean().item()
            lo, hi = (a, hi) if p < target_p else (lo, a)
    return a


# ----------------------------------------------------------------------------- unit tests
def test_trl_building_blocks_are_used():
    from trl.trainer import utils

    assert P.TRL_BLOCKS == "trl.trainer.utils"
    assert P.selective_log_softmax is utils.selective_log_softmax
    assert P.entropy_from_logits is utils.entropy_from_logits


def test_kl_controller_adaptive_and_fixed():
    ctl = P.KLController(0.1, target=6.0, horizon=10000)
    # KL far above target: error clipped to +0.2 -> beta *= 1 + 0.2 * 64 / 10000
    assert ctl.update(100.0, 64) == pytest.approx(0.1 * (1 + 0.2 * 64 / 10000))
    v = ctl.value
    # KL below target: proportional error (3/6 - 1 = -0.5) clipped to -0.2
    assert ctl.update(3.0, 100) == pytest.approx(v * (1 - 0.2 * 100 / 10000))
    v = ctl.value
    # inside the clip range: error = 6.6/6 - 1 = 0.1
    assert ctl.update(6.6, 1000) == pytest.approx(v * (1 + 0.1 * 1000 / 10000))
    # on target: unchanged
    v = ctl.value
    assert ctl.update(6.0, 1000) == pytest.approx(v)
    state = ctl.state_dict()
    other = P.KLController(1.0)
    other.load_state_dict(state)
    assert other.state_dict() == state
    fixed = P.KLController(0.2, target=None)
    assert fixed.update(1e9, 10**6) == 0.2
    # repeated large KL makes beta grow, small KL makes it shrink
    up, down = P.KLController(0.1, 6.0, 100), P.KLController(0.1, 6.0, 100)
    for _ in range(20):
        up.update(50.0, 10)
        down.update(0.0, 10)
    assert up.value > 0.1 > down.value


def _toy_batch(tok, B=3, Q=7, R=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    query = torch.randint(0, len(tok), (B, Q), generator=g)
    query_mask = torch.ones(B, Q, dtype=torch.long)
    query_mask[0, :3] = 0  # left padding
    query_mask[2, :1] = 0
    response = torch.randint(0, len(tok), (B, R), generator=g)
    response_mask = torch.ones(B, R, dtype=torch.long)
    response_mask[1, 6:] = 0  # ended early
    return query, query_mask, response, response_mask


def test_chunked_logprobs_equal_unchunked(tiny):
    ac, tok = tiny
    query, qm, resp, rm = _toy_batch(tok)
    kw = dict(temperature=0.7, with_values=True, with_entropy=True)
    with torch.no_grad():
        lp_1, v_1, ent_1 = P.sequence_forward(ac, ac.lm, query, qm, resp, rm, chunk_size=1, **kw)
        lp_3, v_3, ent_3 = P.sequence_forward(ac, ac.lm, query, qm, resp, rm, chunk_size=3, **kw)
        lp_all, v_all, ent_all = P.sequence_forward(ac, ac.lm, query, qm, resp, rm, chunk_size=1000, **kw)
        # naive reference: full-vocab logits of the whole sequence, log_softmax, gather
        ids, mask = torch.cat([query, resp], 1), torch.cat([qm, rm], 1)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = ac.lm(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, query.shape[1] - 1:-1] / 0.7
        naive = logits.log_softmax(-1).gather(-1, resp[..., None]).squeeze(-1)
        naive_ent = -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1)
    m = rm.bool()
    for lp in (lp_1, lp_3):
        torch.testing.assert_close(lp[m], lp_all[m], rtol=0, atol=1e-5)
    torch.testing.assert_close(lp_all[m], naive[m], rtol=0, atol=1e-4)
    torch.testing.assert_close(ent_3[m], naive_ent[m], rtol=0, atol=1e-4)
    torch.testing.assert_close(v_3, v_all)
    assert lp_all.dtype == torch.float32 and lp_all.shape == resp.shape


def test_chunked_checkpointed_gradients_match(tiny):
    ac, tok = tiny
    query, qm, resp, rm = _toy_batch(tok, seed=1)
    ids, mask = torch.cat([query, resp], 1), torch.cat([qm, rm], 1)
    grads = []
    for chunk, ckpt in ((4, True), (1000, False)):
        ac.zero_grad()
        hidden = P.backbone_hidden(ac.lm, ids, mask)[:, query.shape[1] - 1:-1]
        lp, ent = P.token_logprobs(ac.lm, hidden, resp, chunk_size=chunk, with_entropy=True, entropy_grad=True,
                                   checkpoint=ckpt)
        ((lp * rm).sum() + 0.1 * (ent * rm).sum()).backward()
        grads.append({n: p.grad.clone() for n, p in ac.lm.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-4, atol=1e-6)


def test_generate_signals_masks_and_newline_stop(tiny):
    ac, tok = tiny
    args = P.Args(max_signal_tokens=6, device="cpu")
    stop = P.stop_token_ids(tok, True)
    assert tok.eos_token_id in stop and tok("\n")["input_ids"][0] in stop
    torch.manual_seed(0)
    prompts = ["Question: 1+1?\nAdvice:", "Question: a much longer question about apples and pears?\nAdvice:"]
    out = P.generate_signals(ac.lm, tok, prompts, args, stop, torch.device("cpu"))
    assert out["query"].shape[0] == 2 and out["query_mask"][0, 0] == 0  # left-padded
    assert out["response"].shape[1] <= 6
    for row, m, sig in zip(out["response"].tolist(), out["response_mask"].tolist(), out["signals"]):
        n = sum(m)
        assert m == [1] * n + [0] * (len(m) - n)
        assert not any(t in stop for t in row[: n - 1])  # no stop token before the last kept one
        assert "\n" not in sig and sig == sig.strip()


def test_cli_is_tyro_with_field_docstrings(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as e:
        P.parse_args(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "--save-every" in text and "--no-stop-at-newline" in text
    assert "Write a checkpoint every N iterations" in text  # help texts are the fields' docstrings
    assert "--top-k" not in text and "--top-p" not in text  # sampling is the tempered full softmax only
    args = P.parse_args(["--no-stop-at-newline", "--subset-size", "5", "--bf16", "--tokenizer", "None",
                         "--learning-rate", "3e-4", "--receiver", "hf:foo"])
    assert args.stop_at_newline is False and args.subset_size == 5 and args.bf16 is True
    assert args.tokenizer is None and args.learning_rate == 3e-4 and args.receiver == "hf:foo"
    assert P.parse_args([]) == P.Args()
    with pytest.raises(SystemExit):
        P.parse_args(["--top-k", "5"])


def test_sampling_and_scoring_are_the_same_distribution(tiny, monkeypatch):
    """The log-probs PPO scores are those of the distribution generate() sampled from (on-policy ratios),
    even when the model's own generation_config asks for top-k / top-p (as pretrained GPT-2's could)."""
    ac, tok = tiny
    monkeypatch.setattr(ac.lm.generation_config, "top_k", 5, raising=False)
    monkeypatch.setattr(ac.lm.generation_config, "top_p", 0.5, raising=False)
    captured = {}
    original = ac.lm.generate

    def generate_with_scores(**kw):
        out = original(**kw, output_scores=True, return_dict_in_generate=True)
        captured["scores"] = out.scores  # the processed logits each token was sampled from
        return out.sequences

    monkeypatch.setattr(ac.lm, "generate", generate_with_scores)
    args = P.Args(max_signal_tokens=6, device="cpu", temperature=0.7)
    torch.manual_seed(0)
    prompts = ["Question: 1+1?\nAdvice:", "Question: a much longer question about apples and pears?\nAdvice:"]
    out = P.generate_signals(ac.lm, tok, prompts, args, P.stop_token_ids(tok), torch.device("cpu"))
    with torch.no_grad():
        scored, _, _ = P.sequence_forward(ac, ac.lm, out["query"], out["query_mask"], out["response"],
                                          out["response_mask"], temperature=0.7, chunk_size=4, with_values=False)
    sampled = torch.stack([s.float().log_softmax(-1) for s in captured["scores"]], 1)  # [B, T, V]
    sampled = sampled[:, : out["response"].shape[1]].gather(-1, out["response"][..., None]).squeeze(-1)
    m = out["response_mask"].bool()
    assert m.sum() > 4
    torch.testing.assert_close(scored[m], sampled[m], rtol=0, atol=1e-4)


def test_signal_cut_in_tokens_credits_only_seen_tokens(tmp_path, tiny):
    """With max_signal_length=12 most sampled signals are too long: the Receiver sees the text of exactly
    the tokens the loss credits (never a character cut of longer credited text)."""
    ac, tok = tiny
    env, receiver = make_env(subset_size=8, max_signal_length=12)
    venv = P.make_vector_env(env, 8)
    obs, _ = venv.reset(seed=0)
    args = tiny_args(tmp_path, batch_size=8, num_minibatches=1, max_signal_tokens=8, stop_at_newline=False)
    torch.manual_seed(0)
    batch, _ = P.rollout(venv, obs, ac, P.make_reference(ac), tok, args, P.stop_token_ids(tok, False),
                         torch.device("cpu"))
    seen = [info["signal"] for info in batch["infos"]]
    assert seen == batch["signals"]
    n_cut = 0
    for row, m, sig in zip(batch["response"].tolist(), batch["response_mask"].tolist(), seen):
        n = sum(m)
        assert n >= 1 and m == [1] * n + [0] * (len(m) - n)
        assert len(sig) <= 12
        credited = P.signal_text(tok, row[:n], False)
        assert credited == sig or (n == 1 and credited[:12] == sig)
        n_cut += n < len(m)
    assert n_cut >= 2  # the cut happened (random tiny GPT-2 tokens are ~4-8 characters each)
    assert torch.all(batch["logprobs"][batch["response_mask"] == 0] == 0)  # uncredited tokens carry nothing


def test_receiver_failure_raises_never_zero(tmp_path, tiny):
    ac, tok = tiny
    env, receiver = make_env(fail=True, subset_size=8)
    venv = P.make_vector_env(env, 4)
    obs, _ = venv.reset(seed=0)
    args = tiny_args(tmp_path, batch_size=4, num_minibatches=1, max_signal_tokens=3)
    with pytest.raises(bpa_gym.ReceiverError):
        P.rollout(venv, obs, ac, P.make_reference(ac), tok, args, P.stop_token_ids(tok), torch.device("cpu"))
    assert receiver.calls == [4]


# ----------------------------------------------------------------------------- learning
def run_keyword_learning(tmp_path: Path, seed: int) -> tuple[list[float], dict, ScriptedReceiver, P.Args]:
    torch.manual_seed(seed)
    env, receiver = make_env()
    ac, tok = P.make_policy("random:tiny", str(GPT2_DIR), seed=seed)
    bias_towards(ac, tok, KEYWORD, target_p=0.0275)
    args = tiny_args(tmp_path, seed=seed, num_iterations=4, batch_size=32, num_minibatches=1, update_epochs=2,
                     learning_rate=2e-3, init_kl_coef=0.01, save_every=0)
    out = P.train(args, env=env, actor_critic=ac, tokenizer=tok)
    return [h["reward"] for h in out["history"]], out, receiver, args


def test_ppo_learns_keyword_signal(tmp_path):
    """A tiny random GPT-2 biased to say " carefully" ~2.75% of the time per token (random-policy reward
    ~0.2 over 8-token signals) learns to put it in nearly every signal within 4 iterations of 32 signals.

    Items come from the 32-env vector env (sub-env i seeded seed + i), one venv.step per iteration.
    Checked locally (reward per iteration 1..4): seed 0: 0.22 0.44 0.75 0.97; seed 1: 0.28 0.50 0.94 0.94;
    seed 2: 0.16 0.62 0.94 1.00; seed 3: 0.28 0.62 0.97 0.97 (with items sampled by env.unwrapped.np_random
    before: seed 0: 0.22 0.44 0.81 0.97; seed 1: 0.25 0.50 0.94 0.94; seed 2: 0.19 0.62 0.94 1.00;
    seed 3: 0.28 0.59 1.00 0.97).
    """
    rewards, out, receiver, args = run_keyword_learning(tmp_path, seed=0)
    print("mean reward per iteration:", rewards)
    assert receiver.calls == [32] * 4  # ONE batched Receiver call per PPO iteration
    assert rewards[0] < 0.45  # the random (biased-init) policy level, ~0.2
    assert np.mean(rewards[-2:]) >= 0.6
    assert all(np.isfinite(h["kl"]) and np.isfinite(h["policy"]) for h in out["history"])
    assert list(Path(args.save_dir).glob("events.out.tfevents.*")), "TensorBoard events were not written"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(Path(args.save_dir)))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"charts/reward", "charts/SPS", "losses/policy", "losses/value", "kl", "entropy",
            "charts/kl_coef"} <= tags


# ----------------------------------------------------------------------------- checkpoints
class _Killed(Exception):
    pass


def test_checkpoint_resume_matches_uninterrupted_run(tmp_path):
    common = dict(seed=3, num_iterations=3, batch_size=8, num_minibatches=2, micro_batch_size=2, update_epochs=1,
                  max_signal_tokens=4, learning_rate=1e-3, save_every=1)
    # uninterrupted 3 iterations
    env_a, _ = make_env(subset_size=16)
    args_a = tiny_args(tmp_path / "a", **common)
    out_a = P.train(args_a, env=env_a)

    # "killed" right after iteration 2's checkpoint, then resumed in a fresh env/policy as a new process would
    args_b = tiny_args(tmp_path / "b", **common)

    def kill(it, row):
        if it == 2:
            raise _Killed

    env_b, _ = make_env(subset_size=16)
    with pytest.raises(_Killed):
        P.train(args_b, env=env_b, callback=kill)
    saved = P.load_checkpoint(Path(args_b.save_dir) / "checkpoint.pt")
    assert saved["iteration"] == 2
    assert not list(Path(args_b.save_dir).glob(".*"))  # atomic writes leave no temp files
    torch.load(Path(args_b.save_dir) / "checkpoint.pt", weights_only=True)  # plain tensors and Python types

    seen = {}

    def check_loaded(it, row):
        seen.setdefault("first", it)

    env_c, _ = make_env(subset_size=16)
    args_c = tiny_args(tmp_path / "b", resume=True, **common)
    torch.manual_seed(12345)  # a resumed process starts from different RNG states: the checkpoint must restore them
    np.random.seed(12345)
    out_c = P.train(args_c, env=env_c, callback=check_loaded)
    assert out_c["start_iteration"] == 2 and seen["first"] == 3
    assert [h["iteration"] for h in out_c["history"]] == [3]
    # the resumed iteration is the uninterrupted run's iteration 3
    assert out_c["history"][0]["reward"] == out_a["history"][2]["reward"]
    assert out_c["kl_coef"] == pytest.approx(out_a["kl_coef"], rel=1e-12)
    sa, sc = out_a["actor_critic"].state_dict(), out_c["actor_critic"].state_dict()
    for name in sa:
        torch.testing.assert_close(sc[name], sa[name], rtol=0, atol=1e-6, msg=name)
    final_a = P.load_checkpoint(Path(args_a.save_dir) / "checkpoint.pt")
    final_c = P.load_checkpoint(Path(args_c.save_dir) / "checkpoint.pt")
    assert final_c["iteration"] == final_a["iteration"] == 3
    # the vector env's item streams continued exactly: same RNGs, permutations, cursors and next items
    assert final_c["env_items"] == final_a["env_items"]
    assert final_a["env_items"]["num_envs"] == 8 and len(final_a["env_items"]["sub_envs"]) == 8
    opt_a, opt_c = final_a["optimizer"]["state"], final_c["optimizer"]["state"]
    assert opt_a.keys() == opt_c.keys()
    for k in opt_a:
        assert float(opt_c[k]["step"]) == float(opt_a[k]["step"]) == 3 * 2  # 3 iterations x 2 minibatches
        torch.testing.assert_close(opt_c[k]["exp_avg_sq"], opt_a[k]["exp_avg_sq"], rtol=1e-5, atol=1e-9)
    assert (Path(args_c.save_dir) / "ref.pt").is_file()


# ----------------------------------------------------------------------------- benchmark dry run
def test_gpu_benchmark_tiny_dry_run(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_advisor", REPO / "benchmarks" / "gpu_advisor.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "tiny.json"
    bench.main(["--tiny", "--device", "cpu", "--out", str(out)])
    report = json.loads(out.read_text())
    assert set(bench.REPORT_KEYS) <= report.keys()
    assert {"generate", "receiver", "score", "update", "iteration"} <= report["time_s"].keys()
    assert report["samples_per_s"] > 0 and report["peak_gpu_mem_gib"] is None  # timings are reported, not judged


# ----------------------------------------------------------------------------- real Receiver smoke
@pytest.mark.slow
def test_smoke_real_smollm2_receiver(tmp_path):
    from bpa_gym import receivers

    try:
        receivers.smollm2_path()
    except bpa_gym.ModelNotFoundError as e:
        pytest.skip(f"SmolLM2 is not installed: {e}")
    args = tiny_args(tmp_path, receiver="smollm2", receiver_max_new_tokens=32, receiver_device="cpu",
                     data_dir=str(DATA_DIR), split="test", subset_size=8, batch_size=4, num_minibatches=1,
                     update_epochs=1, num_iterations=2, save_every=1)
    env = P.make_env(args)  # receiver="smollm2", receiver_kwargs={"max_new_tokens": 32, "device": "cpu", ...}
    assert env.unwrapped.receiver.generation.max_new_tokens == 32
    out = P.train(args, env=env)
    assert [h["iteration"] for h in out["history"]] == [1, 2]
    assert all(h["reward"] in (0.0, 0.25, 0.5, 0.75, 1.0) for h in out["history"])
    assert (Path(args.save_dir) / "checkpoint.pt").is_file()


class _Payload:
    """Unpickling this runs ``open(marker, "w").write("ran")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def test_crafted_checkpoint_is_refused_and_its_payload_never_runs(tmp_path):
    """--resume loads with torch.load(weights_only=True): a checkpoint holding a pickled object is refused
    with a clear ConfigError naming the file, and the object's code never runs."""
    marker = tmp_path / "pwned"
    args = tiny_args(tmp_path, resume=True, batch_size=4, num_minibatches=1, num_iterations=1)
    ckpt = Path(args.save_dir) / "checkpoint.pt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"iteration": 0, "policy": {}, "optimizer": {}, "kl_controller": {}, "env_rng": {},
                "rng": {"python": _Payload(marker)}}, ckpt)
    with pytest.raises(bpa_gym.ConfigError, match=r"refusing to load checkpoint .*checkpoint.pt: .*GLOBAL .*exec"):
        P.load_checkpoint(ckpt)
    env, _ = make_env(subset_size=8)
    with pytest.raises(bpa_gym.ConfigError, match="nothing in it was run"):
        P.train(args, env=env)
    ckpt.unlink()
    torch.save({"transformer.wte.weight": _Payload(marker)}, ckpt.with_name("ref.pt"))  # the frozen reference too
    with pytest.raises(bpa_gym.ConfigError, match=r"refusing to load checkpoint .*ref.pt"):
        P.train(args, env=env)
    assert not marker.exists()


def test_rng_state_is_plain_data_and_round_trips(tmp_path):
    """The saved RNG states survive torch.save/torch.load(weights_only=True) and restore every stream."""
    import random

    random.seed(5), np.random.seed(6), torch.manual_seed(7)
    random.gauss(0, 1), np.random.standard_normal()  # a cached Gaussian is part of both states
    path = tmp_path / "rng.pt"
    torch.save(P.rng_state(), path)
    expected = (random.random(), random.gauss(0, 1), np.random.standard_normal(3).tolist(), torch.rand(3))
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    P.set_rng_state(torch.load(path, weights_only=True))
    got = (random.random(), random.gauss(0, 1), np.random.standard_normal(3).tolist(), torch.rand(3))
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])


def test_damaged_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(bpa_gym.ConfigError, match="refusing to load checkpoint .*Unsupported operand"):
        P.load_checkpoint(bad)
    torch.save({"iteration": 1, "policy": torch.zeros(100)}, bad)
    bad.write_bytes(bad.read_bytes()[:200])  # truncated
    with pytest.raises(bpa_gym.ConfigError, match="cannot read checkpoint .*checkpoint.pt"):
        P.load_checkpoint(bad)
    torch.save({"iteration": 1}, bad)
    with pytest.raises(bpa_gym.ConfigError, match="missing"):
        P.load_checkpoint(bad)
