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
    for module, names in bpa_gym_imports(path):
        assert not any(part.startswith("_") for part in module.split(".")), f"{path.name} imports {module}"
        assert not any(n.startswith("_") for n in names), f"{path.name} imports private {names} from {module}"
        mod = importlib.import_module(module)
        for n in names:
            assert hasattr(mod, n), f"{path.name}: {module} has no {n}"


def test_example_agent_is_short():
    assert len((Path(__file__).resolve().parents[1] / "agents" / "example_agent.py").read_text().splitlines()) <= 30
