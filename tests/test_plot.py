"""memcgsim run --plot writes a PNG of the expected size."""

import pathlib
import struct

import pytest

from memcgsim.cli import main

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_is_a_png_of_the_expected_size(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run.png"
    assert main(["run", "--plot", str(out), str(EXAMPLES / "oom-with-low-rss.yaml")]) == 0
    assert png_size(out) == (1000, 600)
    assert "3 of 3 expectations hold" in capsys.readouterr().out


def test_one_plot_per_file_when_several_run(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run.png"
    files = [str(EXAMPLES / "first-touch.yaml"), str(EXAMPLES / "move-charge.yaml")]
    assert main(["run", "--plot", str(out), *files]) == 0
    assert png_size(tmp_path / "run-1.png") == (1000, 600)
    assert png_size(tmp_path / "run-2.png") == (1000, 600)
    assert not out.exists()
