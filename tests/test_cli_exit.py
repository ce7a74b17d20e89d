"""The console entry (`lf2`, `python -m lf2`) exits without the interpreter's teardown
(lf2.cli.console_main): what it must still do is return main()'s exit code, flush what was
printed into a pipe, run the atexit handlers and leave every output file complete."""

from __future__ import annotations

import pstats
import subprocess
import sys
from pathlib import Path

from PIL import Image

from lf2.data.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "params" / "default.yaml"


def _lf2(*args: str, runner: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``python [runner...] -m lf2 args...``; ``runner`` wraps lf2 in another module (a profiler)."""
    return subprocess.run([sys.executable, *runner, "-m", "lf2", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_printed_output_reaches_a_pipe_and_the_code_is_zero() -> None:
    res = _lf2("params", "--params", str(DEFAULT), "--get", "finetune.sampling")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "shared"


def test_an_error_keeps_its_exit_code_and_message() -> None:
    res = _lf2("params", "--params", str(DEFAULT), "--set", "finetune.sampling=triple")
    assert res.returncode == 1
    assert "finetune.sampling" in res.stderr


def test_atexit_handlers_still_run() -> None:
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('atexit ran', flush=True))\n"
        "sys.argv = ['lf2', 'params', '--params', sys.argv[1], '--get', 'seed']\n"
        "from lf2.cli import console_main\n"
        "console_main()\n"
    )
    res = subprocess.run([sys.executable, "-c", code, str(DEFAULT)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["0", "atexit", "ran"]


def test_a_profiler_still_writes_its_output(tmp_path: Path) -> None:
    """cProfile dumps its stats in the teardown that os._exit would skip."""
    stats = tmp_path / "lf2.prof"
    res = _lf2("params", "--params", str(DEFAULT), "--get", "seed",
               runner=("-m", "cProfile", "-o", str(stats)))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "0"
    assert pstats.Stats(str(stats)).total_calls > 0


def test_files_written_by_a_stage_are_complete(tmp_path: Path) -> None:
    out = tmp_path / "synth_a"
    res = _lf2("prepare", "synthetic", "--params", str(DEFAULT), "--dataset", "synth_a",
               "--out", str(out), "--train-ids", "4", "--test-ids", "4",
               "--workers", "2")
    assert res.returncode == 0, res.stderr
    manifest = load_manifest(out)  # manifest.csv and meta.json parse
    for split in ("train", "query", "gallery"):
        paths = manifest.paths(split)
        assert paths and all(Image.open(p).size == (16, 32) for p in paths)  # every image decodes
