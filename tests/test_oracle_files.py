"""Oracle table files: a damaged or old-format ``.npz`` gets a clear ConfigError naming the file; writes are atomic."""

from __future__ import annotations

import io
import json
import zipfile

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bpa_gym  # noqa: F401  (registers envs)
from bpa_gym.errors import ConfigError
from bpa_gym.oracle_table import OracleTable, OracleTableRegret, build_oracle_table


@pytest.fixture(scope="module")
def table():
    return build_oracle_table(gym.make("BayesPersuasion-Identity-v0", num_items=5))


@pytest.fixture(scope="module")
def good_bytes(table, tmp_path_factory):
    return table.save(tmp_path_factory.mktemp("good") / "t.npz").read_bytes()


def npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def meta_of(table, **changes):
    meta = {"format": 2, "item_ids": list(table.item_ids), "signals": list(table.signals),
            "receiver": table.receiver, "identity": table.identity, "item_digests": list(table.item_digests)}
    meta.update(changes)
    return np.array(json.dumps(meta))


def test_roundtrip_keeps_the_binding(table, tmp_path):
    loaded = OracleTable.load(table.save(tmp_path / "t.npz"))
    assert loaded.identity == table.identity and loaded.item_digests == table.item_digests
    assert loaded.source == str(tmp_path / "t.npz")
    np.testing.assert_array_equal(loaded.rewards, table.rewards)


DAMAGE = {
    "truncated": lambda p, t, good: p.write_bytes(good[: len(good) // 2]),
    "not a zip": lambda p, t, good: p.write_text("hello, I am not an archive"),
    "empty file": lambda p, t, good: p.write_bytes(b""),
    "a .npy array": lambda p, t, good: np.save(open(p, "wb"), np.zeros(3)),
    "missing meta": lambda p, t, good: npz(p, rewards=t.rewards),
    "missing rewards": lambda p, t, good: npz(p, meta=meta_of(t)),
    "wrong shape": lambda p, t, good: npz(p, rewards=t.rewards[:, :2], meta=meta_of(t)),
    "1-d rewards": lambda p, t, good: npz(p, rewards=t.rewards.ravel(), meta=meta_of(t)),
    "reward above 1": lambda p, t, good: npz(p, rewards=t.rewards + 0.5, meta=meta_of(t)),
    "negative reward": lambda p, t, good: npz(p, rewards=t.rewards - 1, meta=meta_of(t)),
    "nan reward": lambda p, t, good: npz(p, rewards=np.full_like(t.rewards, np.nan), meta=meta_of(t)),
    "string rewards": lambda p, t, good: npz(p, rewards=np.full(t.rewards.shape, "x"), meta=meta_of(t)),
    "pickled rewards": lambda p, t, good: npz(p, rewards=np.array([[None]], dtype=object), meta=meta_of(t)),
    "meta not json": lambda p, t, good: npz(p, rewards=t.rewards, meta=np.array("{not json")),
    "meta a list": lambda p, t, good: npz(p, rewards=t.rewards, meta=np.array("[1, 2]")),
    "meta an array": lambda p, t, good: npz(p, rewards=t.rewards, meta=np.zeros(2)),
    "meta deeply nested": lambda p, t, good: npz(p, rewards=t.rewards, meta=np.array("[" * 100000 + "]" * 100000)),
    "meta missing signals": lambda p, t, good: npz(p, rewards=t.rewards, meta=meta_of(t, signals=None)),
    "meta ids not strings": lambda p, t, good: npz(p, rewards=t.rewards, meta=meta_of(t, item_ids=[1, 2, 3, 4, 5])),
    "duplicate ids": lambda p, t, good: npz(p, rewards=t.rewards, meta=meta_of(t, item_ids=["a"] * 5)),
    "digests wrong length": lambda p, t, good: npz(p, rewards=t.rewards, meta=meta_of(t, item_digests=["x"])),
    "unknown format": lambda p, t, good: npz(p, rewards=t.rewards, meta=meta_of(t, format=99)),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_file_is_a_clear_error_naming_it(damage, table, good_bytes, tmp_path):
    path = tmp_path / "bad.npz"
    DAMAGE[damage](path, table, good_bytes)
    with pytest.raises(ConfigError) as exc:
        OracleTable.load(path)
    assert str(path) in str(exc.value) and "bpa-gym oracle-table" in str(exc.value)
    with pytest.raises(ConfigError, match="bad.npz"):  # the same through make(oracle_table=path)
        gym.make("BayesPersuasion-Identity-v0", num_items=5, oracle_table=path)


def test_old_format_says_to_rebuild(table, tmp_path):
    path = tmp_path / "old.npz"
    old_meta = json.dumps({"item_ids": list(table.item_ids), "signals": list(table.signals), "receiver": "smollm2"})
    np.savez(path, rewards=table.rewards, meta=np.array(old_meta))  # what bpa_gym wrote before the binding
    with pytest.raises(ConfigError) as exc:
        OracleTable.load(path)
    msg = str(exc.value)
    assert f"oracle table {path} was written by an older bpa_gym" in msg
    assert f"rebuild it with `bpa-gym oracle-table --env ENV_ID --receiver smollm2 --out {path}`" in msg


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_corruption_is_a_table_or_a_config_error(data, table, good_bytes, tmp_path_factory):
    """Flip, cut or overwrite bytes anywhere: load returns a valid table or raises ConfigError, nothing else."""
    raw = bytearray(good_bytes)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    path = tmp_path_factory.mktemp("fuzz") / "t.npz"
    path.write_bytes(bytes(raw))
    try:
        loaded = OracleTable.load(path)
    except ConfigError as exc:
        assert str(path) in str(exc)
    else:
        assert loaded.rewards.shape == (len(loaded.item_ids), len(loaded.signals))
        assert np.isfinite(loaded.rewards).all() and loaded.rewards.min() >= 0 and loaded.rewards.max() <= 1


def test_a_failed_write_leaves_the_old_file(table, tmp_path, monkeypatch):
    path = table.save(tmp_path / "t.npz")
    before = path.read_bytes()

    def broken_savez(fh, **arrays):
        fh.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr("bpa_gym.oracle_table.np.savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        table.save(path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["t.npz"]


def test_save_uses_the_shared_atomic_writer(table, tmp_path, monkeypatch):
    import bpa_gym.oracle_table as ot

    used = []
    real = ot.atomic_write

    def spy(path, *args, **kwargs):
        used.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(ot, "atomic_write", spy)
    table.save(tmp_path / "t.npz")
    assert used == [tmp_path / "t.npz"]
    with zipfile.ZipFile(io.BytesIO((tmp_path / "t.npz").read_bytes())) as zf:
        assert sorted(zf.namelist()) == ["meta.npy", "rewards.npy"]


@pytest.mark.parametrize("rewards, match", [
    (np.array([[0.0, 2.0]]), r"in \[0, 1\]"),
    (np.array([[0.0, -0.1]]), r"in \[0, 1\]"),
    (np.array([[0.0, np.inf]]), "NaN/inf"),
    (np.array([["a", "b"]]), "real numbers"),
])
def test_constructor_checks_rewards(rewards, match):
    with pytest.raises(ConfigError, match=match):
        OracleTable(("a",), ("", "x"), rewards, "r")


@pytest.mark.parametrize("action", [-1, 3, 1.5, True, "1", None, np.array([0, 1])])
def test_instant_regret_refuses_actions_outside_the_table(action):
    oracle = OracleTableRegret(OracleTable(("a",), ("", "x", "y"), np.array([[0.0, 1.0, 0.0]]), "r"))
    with pytest.raises(ConfigError, match="0..2"):
        oracle.instant_regret(action, {"item_id": "a"})
    assert oracle.instant_regret(np.int64(2), {"item_id": "a"}) == 1.0


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size = 0: must be an integer >= 1"),
    ({"batch_size": 2.5}, "batch_size = 2.5: must be an integer >= 1"),
    ({"batch_size": True}, "batch_size = True"),
    ({"batch_size": "8"}, "batch_size = '8'"),
    ({"progress": "yes"}, "progress = 'yes': must be True or False"),
    ({"items": "abc"}, "items must be a sequence of bpa_gym.types.Item"),
    ({"items": []}, "no items"),
])
def test_build_arguments_are_checked(kwargs, match):
    env = gym.make("BayesPersuasion-Identity-v0", num_items=3)
    with pytest.raises(ConfigError, match=match):
        build_oracle_table(env, **kwargs)


def test_build_refuses_non_llm_env():
    with pytest.raises(ConfigError, match="expected a bpa_gym LLM env"):
        build_oracle_table(gym.make("BayesPersuasion-Prosecutor-v0"))
