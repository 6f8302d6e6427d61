"""tests/mutation_smoke.py stays runnable: every breakage's text is in its file exactly once and
every test it relies on exists (the check itself is run by hand: it takes minutes)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
REPO = HERE.parent


def load_script():
    spec = importlib.util.spec_from_file_location("mutation_smoke", HERE / "mutation_smoke.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


SCRIPT = load_script()


@pytest.mark.parametrize("mutation", SCRIPT.MUTATIONS, ids=lambda m: m.name)
def test_breakage_applies_and_names_existing_tests(mutation):
    text = (REPO / mutation.path).read_text()
    for old, new in mutation.edits:
        assert text.count(old) == 1, (mutation.name, old)
        assert old != new
    assert mutation.tests
    for node in mutation.tests:
        path, _, name = node.partition("::")
        name = name.split("[", 1)[0]  # a parametrized node names its function before the brackets
        source = (REPO / path).read_text()
        assert path.startswith("tests/") and Path(path).name.startswith("test_"), node
        if name:
            assert re.search(rf"^def {re.escape(name)}\(", source, re.M), node


def test_the_script_is_not_collected_by_the_suite():
    assert not SCRIPT.__file__.rsplit("/", 1)[-1].startswith("test_")
    names = [m.name for m in SCRIPT.MUTATIONS]
    assert len(names) == len(set(names))
