"""README.md and ARCHITECTURE.md say what the code does: their examples run, their figures hold."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from memcgsim import Kernel

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ARCHITECTURE = ROOT / "ARCHITECTURE.md"


def fenced_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, flags=re.M | re.S)


PYTHON_BLOCKS = fenced_blocks(README.read_text(), "python")


def test_readme_has_python_examples():
    assert PYTHON_BLOCKS


@pytest.mark.parametrize("n", range(len(PYTHON_BLOCKS)))
def test_readme_python_block_runs(n, capsys):
    exec(compile(PYTHON_BLOCKS[n], f"README.md python block {n + 1}", "exec"), {})


def test_readme_starts_with_the_two_commands():
    lines = README.read_text().splitlines()
    assert lines[0] == "# memcgsim"
    body = [line for line in lines[1:] if line.strip()]
    assert body[:4] == ["```sh", "pip install . && memcgsim demo",
                        "pip install '.[test]' && python -m pytest", "```"]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest" in ci and "pip install '.[test]'" in ci


def test_architecture_bytes_per_page_match_the_arrays():
    """The per-page layout table of ARCHITECTURE.md against the model's pfn-indexed arrays."""
    text = ARCHITECTURE.read_text()
    k = Kernel(512)
    arrays = {**k.mem_map.arrays(), **k.pc.arrays()}
    for name, a in arrays.items():
        m = re.search(rf"^\| `{name}` +\| `(\w+)` +\| (\d+) ", text, flags=re.M)
        assert m, f"ARCHITECTURE.md does not list the array {name}"
        assert np.dtype(m.group(1)) == a.dtype, name
        assert int(m.group(2)) == a.itemsize, name
    total = sum(a.itemsize for a in arrays.values())
    assert f"**{total} bytes per page**" in text
