"""Every patch id lives in `workflows/patches.py`, and the baseline the gateway starts runs at
implies all of them (a patch added later is checked by `workflow.patched()` until a new
baseline takes it in: then this test says which)."""

from __future__ import annotations

import re
from pathlib import Path

from workflows import patches

WORKFLOWS = Path(patches.__file__).resolve().parent


def test_every_patch_id_is_declared_in_one_place() -> None:
    for path in WORKFLOWS.glob("*.py"):
        if path.name == "patches.py":
            continue
        text = path.read_text()
        assert "workflow.patched(" not in text, f"{path.name}: use self._patched / patches.patched"
        for constant in re.findall(r"patched\(\s*([A-Z_0-9]+)", text):
            assert hasattr(patches, constant), f"{path.name}: {constant} not in patches.py"


def test_the_current_baseline_implies_every_declared_patch() -> None:
    declared = {
        value
        for name, value in vars(patches).items()
        if name.isupper() and isinstance(value, str) and name != "CURRENT_BASELINE"
    }
    assert patches.CURRENT_BASELINE == max(patches.BASELINES)
    assert declared == set(patches.BASELINES[patches.CURRENT_BASELINE])
    for n in range(1, patches.CURRENT_BASELINE + 1):  # each baseline keeps the one before
        assert patches.BASELINES[n - 1] <= patches.BASELINES[n]
