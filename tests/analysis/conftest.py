"""Fixtures for the analysis tests; the synthetic store itself is in analysis_support.py."""

from typing import Sequence

import pytest
from analysis_support import BASE, HAND_FAMILIES, HAND_IDS, HAND_LABELS, HAND_PREDS, SynthStore


@pytest.fixture
def make_store(tmp_path):
    def make(backbones: dict[str, str], classes: Sequence[str] = ("c0", "c1", "c2", "c3"), shift: dict | None = None):
        return SynthStore(tmp_path, dict(backbones), tuple(classes), shift)
    return make


@pytest.fixture(scope="module")
def hand_store(tmp_path_factory):
    """Read-only for the tests that share it; `hand_store.con` is one connection with every view."""
    s = SynthStore(tmp_path_factory.mktemp("hand"), dict(HAND_FAMILIES), ("c0", "c1", "c2", "c3"))
    for b, preds in HAND_PREDS.items():
        s.predictions(b, BASE, HAND_IDS, HAND_LABELS, preds)
    s.con = s.connect()
    return s
