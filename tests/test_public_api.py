"""agents/ is the proof that custom agents plug in: it may import only bpa_gym's public API."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

AGENTS = sorted((Path(__file__).resolve().parents[1] / "agents").glob("*.py"))


def bpa_gym_imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "bpa_gym":
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "bpa_gym":
                    yield a.name, []


@pytest.mark.parametrize("path", AGENTS, ids=lambda p: p.name)
def test_agents_import_only_public_names(path):
    """Every name an agent imports from ``bpa_gym.x`` is in ``bpa_gym.x.__all__`` (the module's declared public
    API), so a helper that is merely importable from a private place (e.g. ``resolve_device`` from
    ``bpa_gym.receivers.hf``) fails here."""
    for module, names in bpa_gym_imports(path):
        assert not any(part.startswith("_") for part in module.split(".")), f"{path.name} imports {module}"
        assert not any(n.startswith("_") for n in names), f"{path.name} imports private {names} from {module}"
        mod = importlib.import_module(module)
        if not names:  # `import bpa_gym...`
            continue
        public = getattr(mod, "__all__", None)
        assert public is not None, (f"{path.name} imports {names} from {module}, which declares no __all__: "
                                    f"import them from the module that exports them")
        for n in names:
            assert n in public, f"{path.name} imports {n} from {module}, but {module}.__all__ does not list it"
            assert hasattr(mod, n), f"{path.name}: {module} has no {n}"


def test_public_api_check_catches_a_private_import(tmp_path, monkeypatch):
    """The check above fails on an import from a module without __all__ and on a name missing from __all__."""
    bad = tmp_path / "bad_agent.py"
    bad.write_text("from bpa_gym.receivers.hf import resolve_device\n")
    with pytest.raises(AssertionError, match="declares no __all__|does not list"):
        test_agents_import_only_public_names(bad)
    bad.write_text("from bpa_gym.wrappers import gym\n")
    with pytest.raises(AssertionError, match="does not list"):
        test_agents_import_only_public_names(bad)


def test_example_agent_is_short():
    assert len((Path(__file__).resolve().parents[1] / "agents" / "example_agent.py").read_text().splitlines()) <= 30
