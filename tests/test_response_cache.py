"""The response cache: exact replay, keys that pin the Receiver, several writers, SIGKILL safety."""

from __future__ import annotations

import multiprocessing as mp
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from bpa_gym.errors import ConfigError, ReceiverError
from bpa_gym.receivers.caching import CachingReceiver
from bpa_gym.receivers.scripted import ScriptedReceiver
from bpa_gym.response_cache import ResponseCache
from bpa_gym.types import Generation


class PinnedScripted(ScriptedReceiver):
    """Test double: a ScriptedReceiver with an identity (the built-in Receivers have real ones)."""

    def __init__(self, answer_fn, *, model="m", temperature=0.0, **kw):
        super().__init__(answer_fn, **kw)
        self.identity = {"class": "PinnedScripted", "model": model, "generation": {"temperature": temperature}}


def _p(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_replay_is_exact_and_skips_the_receiver(tmp_path):
    live = PinnedScripted(lambda m: f"answer to {m[-1]['content']}")
    db = tmp_path / "c.sqlite"
    prompts = [_p(f"q{i}") for i in range(10)]
    first = CachingReceiver(live, db).generate(prompts)
    assert live.calls == [10]

    replay_inner = PinnedScripted(lambda m: pytest.fail("the Receiver must not be called on replay"))
    replay = CachingReceiver(replay_inner, db)
    again = replay.generate(prompts)
    assert [g.text for g in again] == [g.text for g in first]
    assert [(g.finish_reason, g.completion_tokens) for g in again] == [(g.finish_reason, g.completion_tokens)
                                                                       for g in first]
    assert (replay.hits, replay.misses, replay_inner.calls) == (10, 0, [])


def test_only_misses_go_to_the_receiver_in_one_batch(tmp_path):
    live = PinnedScripted(lambda m: m[-1]["content"].upper())
    r = CachingReceiver(live, tmp_path / "c.sqlite")
    r.generate([_p("a"), _p("b")])
    out = r.generate([_p("b"), _p("c"), _p("a"), _p("d")])
    assert [g.text for g in out] == ["B", "C", "A", "D"]
    assert live.calls == [2, 2]
    assert [m[-1]["content"] for m in live.prompts[2:]] == ["c", "d"]


def test_key_pins_receiver_identity(tmp_path):
    db = tmp_path / "c.sqlite"
    CachingReceiver(PinnedScripted(lambda m: "from A", model="A"), db).generate([_p("q")])
    other = PinnedScripted(lambda m: "from B", model="B")
    assert CachingReceiver(other, db).generate([_p("q")])[0].text == "from B"
    assert other.calls == [1]
    assert len(ResponseCache(db)) == 2


def test_failures_are_never_cached(tmp_path):
    flaky = PinnedScripted(lambda m: "ok", fail_on=lambda m: m[-1]["content"] == "bad")
    r = CachingReceiver(flaky, tmp_path / "c.sqlite")
    out = r.generate([_p("good"), _p("bad")])
    assert out[1].error is not None
    assert len(r.cache) == 1
    r.generate([_p("bad")])
    assert flaky.calls == [2, 1]  # asked again, not replayed as a failure


def test_refuses_receivers_it_cannot_pin(tmp_path):
    with pytest.raises(ConfigError, match="has no `identity`"):
        CachingReceiver(ScriptedReceiver(lambda m: "x"), tmp_path / "c.sqlite")
    with pytest.raises(ConfigError, match="samples"):
        CachingReceiver(PinnedScripted(lambda m: "x", temperature=0.7), tmp_path / "c.sqlite")
    assert CachingReceiver(PinnedScripted(lambda m: "x", temperature=0.7), tmp_path / "c.sqlite",
                           allow_sampling=True).generate([_p("q")])[0].text == "x"


def test_wrong_count_from_receiver_is_an_error(tmp_path):
    class Short(PinnedScripted):
        def generate(self, prompts):
            return super().generate(prompts)[:-1]

    with pytest.raises(ReceiverError, match="returned 1 generations for 2 prompts"):
        CachingReceiver(Short(lambda m: "x"), tmp_path / "c.sqlite").generate([_p("a"), _p("b")])


def test_not_a_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "c.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match=r"c\.sqlite is not a usable SQLite database.*delete the file"):
        ResponseCache(bad)


def test_stats_and_clear(tmp_path):
    c = ResponseCache(tmp_path / "c.sqlite")
    ident = {"class": "X", "generation": {"temperature": 0.0}}
    assert c.put_many(ident, [_p("a"), _p("b")], [Generation("1", latency_s=2.0), Generation("2", latency_s=3.0)]) == 2
    assert c.put_many(ident, [_p("a")], [Generation("other")]) == 0  # first answer kept
    s = c.stats()
    assert s["entries"] == 2 and s["receivers"][0]["entries"] == 2 and s["receivers"][0]["saved_receiver_s"] == 5.0
    assert c.clear() == 2 and len(c) == 0


def _writer(db: str, worker: int, n: int) -> None:
    c = ResponseCache(db)
    ident = {"class": "W", "generation": {"temperature": 0.0}}
    for i in range(n):
        # Overlapping keys across workers (i), plus each worker's own (worker, i).
        c.put_many(ident, [_p(f"shared {i}"), _p(f"own {worker} {i}")], [Generation(f"s{i}"), Generation(f"o{i}")])


def test_several_processes_write_at_once(tmp_path):
    db = tmp_path / "c.sqlite"
    ResponseCache(db)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(db), w, 40)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 40 + 3 * 40


def test_sigkill_mid_batch_keeps_a_valid_database_and_earlier_batches(tmp_path):
    """A real process killed with SIGKILL while its third batch is being generated, and another
    killed inside a write transaction: the database stays valid, and only the batch in flight is lost."""
    db = tmp_path / "c.sqlite"
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})
        from test_response_cache import PinnedScripted
        from bpa_gym.receivers.caching import CachingReceiver

        def answer(m):
            if m[-1]["content"].startswith("b2"):
                print("generating batch 2", flush=True)
                time.sleep(60)
            return "ok " + m[-1]["content"]

        r = CachingReceiver(PinnedScripted(answer), {str(db)!r})
        for b in range(3):
            r.generate([[{{"role": "user", "content": f"b{{b}} q{{i}}"}}] for i in range(4)])
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "generating batch 2"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    inside = textwrap.dedent(f"""
        import time
        from bpa_gym.response_cache import ResponseCache
        c = ResponseCache({str(db)!r})
        conn = c._connect()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO responses VALUES ('half', 'r', 'x', NULL, NULL, NULL, 0.0, 0.0)")
        print("inside", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", inside], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "inside"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    texts = sorted(t for (t,) in conn.execute("SELECT text FROM responses"))
    assert texts == sorted(f"ok b{b} q{i}" for b in range(2) for i in range(4))
    # The next run carries on from there: only batch 2 goes to the Receiver.
    live = PinnedScripted(lambda m: "ok " + m[-1]["content"])
    r = CachingReceiver(live, db)
    for b in range(3):
        r.generate([_p(f"b{b} q{i}") for i in range(4)])
    assert live.calls == [4] and r.hits == 8


def test_with_response_cache_options(tmp_path, monkeypatch):
    from bpa_gym.receivers.caching import with_response_cache

    monkeypatch.setenv("BPA_RESPONSE_CACHE", str(tmp_path / "default.sqlite"))
    greedy = PinnedScripted(lambda m: "x")
    wrapped = with_response_cache(greedy)
    assert isinstance(wrapped, CachingReceiver) and wrapped.cache.path == tmp_path / "default.sqlite"
    assert with_response_cache(wrapped) is wrapped
    assert with_response_cache(greedy, False) is greedy and with_response_cache(greedy, None) is greedy
    sampling = PinnedScripted(lambda m: "x", temperature=1.0)
    assert with_response_cache(sampling) is sampling  # sampling: only when asked
    assert isinstance(with_response_cache(sampling, True), CachingReceiver)
    assert with_response_cache(greedy, tmp_path / "other.sqlite").cache.path == tmp_path / "other.sqlite"
    plain = ScriptedReceiver(lambda m: "x")
    assert with_response_cache(plain) is plain
    with pytest.raises(ConfigError, match="has no `identity`"):
        with_response_cache(plain, True)
    with pytest.raises(ConfigError, match="cache must be 'auto', True, False"):
        with_response_cache(greedy, 3)
    monkeypatch.setenv("BPA_RESPONSE_CACHE", "off")
    assert with_response_cache(greedy) is greedy


def test_cli_cache_stats_and_clear(tmp_path, capsys):
    from bpa_gym.cli import main

    db = tmp_path / "c.sqlite"
    CachingReceiver(PinnedScripted(lambda m: "x", model="pinned-model"), db).generate([_p("a"), _p("b")])
    assert main(["cache", "stats", "--path", str(db)]) == 0
    out = capsys.readouterr().out
    assert f"{db}: 2 responses" in out and "pinned-model" in out
    assert main(["cache", "stats", "--path", str(db), "--json"]) == 0
    import json

    assert json.loads(capsys.readouterr().out)["entries"] == 2
    assert main(["cache", "clear", "--path", str(db)]) == 0
    assert "cleared 2 cached responses" in capsys.readouterr().out
    assert len(ResponseCache(db)) == 0


def test_env_cache_option_replays_through_gym(tmp_path, shared_data_dir):
    import gymnasium as gym

    db = tmp_path / "c.sqlite"
    live = PinnedScripted(lambda m: "The answer is 18.")
    env = gym.make("BayesPersuasion-GSM8K-v0", receiver=live, data_dir=shared_data_dir, cache=db)
    env.reset(seed=0)
    first = env.step(3)
    replay_inner = PinnedScripted(lambda m: pytest.fail("replayed answers must not reach the Receiver"))
    env2 = gym.make("BayesPersuasion-GSM8K-v0", receiver=replay_inner, data_dir=shared_data_dir, cache=db)
    env2.reset(seed=0)
    second = env2.step(3)
    assert second[1] == first[1] and second[4]["response"] == first[4]["response"]
    assert env2.unwrapped.game.receiver.hits == 1
    off = gym.make("BayesPersuasion-GSM8K-v0", receiver=live, data_dir=shared_data_dir, cache=False)
    assert off.unwrapped.game.receiver is live


@pytest.mark.slow
def test_smollm2_env_replays_from_the_cache(tmp_path, shared_data_dir, smollm2_dir):
    """The real Receiver: a rerun through the cache gives identical steps without generating."""
    import gymnasium as gym

    db = tmp_path / "c.sqlite"

    def run():
        env = gym.make("BayesPersuasion-GSM8K-v0", receiver="smollm2", data_dir=shared_data_dir, cache=db,
                       receiver_kwargs={"max_new_tokens": 16})
        out = []
        env.reset(seed=1)
        for action in (0, 9):
            _, reward, _, _, info = env.step(action)
            out.append((reward, info["response"], info["finish_reason"], info["completion_tokens"]))
            env.reset()
        return out, env.unwrapped.game.receiver

    live, r1 = run()
    replay, r2 = run()
    assert (r1.misses, r2.hits, r2.misses) == (2, 2, 0)
    assert replay == live
    assert ResponseCache(db).stats()["receivers"][0]["receiver"]["weights_sha256"]
