"""Shared pytest fixtures.  The suite runs offline: the Hugging Face hub is switched off here."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only offline assets beside the repo (../shared)."""
    if not (SHARED_DIR / "data").is_dir():
        pytest.skip(f"offline assets not found at {SHARED_DIR} (CI and dev machines have them)")
    return SHARED_DIR


@pytest.fixture(scope="session")
def shared_data_dir(shared_dir) -> Path:
    """../shared/data: holds gsm8k/ and humaneval/."""
    return shared_dir / "data"


@pytest.fixture(scope="session")
def gpt2_dir(shared_dir) -> Path:
    """../shared/models/gpt2: the real GPT-2 tokenizer and config, no weights."""
    return shared_dir / "models" / "gpt2"
