"""Checkpoint files: byte-reproducible, loaded weights-only, verified, never left half-written."""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lf2.errors import CheckpointDamaged, CheckpointRefused, OutputError
from lf2.io import atomic_write_text, sha256_file, stale_temporaries
from lf2.train import runtime
from lf2.train.checkpoint import load_checkpoint, resumable_state, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def _payload() -> dict:
    gen = torch.Generator().manual_seed(0)
    return {"stage": "finetune", "fingerprint": "abc", "epoch": 1,
            "student": {"w": torch.randn(64, 32, generator=gen), "b": torch.zeros(64)},
            "records": [{"epoch": 1, "purity": np.float64(0.5), "num_clusters": np.int64(6)}],
            "rng": runtime.rng_state()}


def _member_offset(path: Path, member_suffix: str) -> int:
    """Where the bytes of the zip member ending in ``member_suffix`` start in the file."""
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(member_suffix))
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        header = fh.read(30)
    name_len, extra_len = int.from_bytes(header[26:28], "little"), int.from_bytes(header[28:30], "little")
    return info.header_offset + 30 + name_len + extra_len


def _flip_bytes(path: Path, offset: int, n: int = 16) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        data = bytearray(fh.read(n))
        fh.seek(offset)
        fh.write(bytes(b ^ 0xFF for b in data))


# ------------------------------------------------------------------ byte-reproducible


def test_same_payload_writes_the_same_bytes(tmp_path):
    payload = _payload()
    save_checkpoint(tmp_path / "a" / "model.pt", payload)
    save_checkpoint(tmp_path / "b" / "other.pt", payload)  # other folder, name and temporary
    assert sha256_file(tmp_path / "a" / "model.pt") == sha256_file(tmp_path / "b" / "other.pt")
    with zipfile.ZipFile(tmp_path / "a" / "model.pt") as zf:  # root fixed, not the temp's name
        assert {n.split("/")[0] for n in zf.namelist()} == {"archive"}


# ------------------------------------------------------------------ safe loading


def test_checkpoint_round_trips_weights_only(tmp_path):
    np.random.seed(5)
    payload = _payload()
    save_checkpoint(tmp_path / "state.pt", payload)
    ckpt = torch.load(tmp_path / "state.pt", weights_only=True)  # plain torch accepts it too
    assert torch.equal(ckpt["student"]["w"], payload["student"]["w"])
    assert ckpt["records"][0] == {"epoch": 1, "purity": 0.5, "num_clusters": 6}
    expected = np.random.rand(3)
    np.random.seed(99)
    runtime.set_rng_state(load_checkpoint(tmp_path / "state.pt")["rng"])
    assert np.array_equal(np.random.rand(3), expected)


def test_crafted_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Crafted:
        def __reduce__(self):
            return (open, (str(marker), "w"))  # unpickling it would create the file

    bad = tmp_path / "model.pt"
    torch.save({"format": "lf2-checkpoint-v1", "student": Crafted()}, bad)
    with pytest.raises(CheckpointRefused, match=r"refusing to load .*model\.pt.*io\.open"):
        load_checkpoint(bad)
    assert not marker.exists()


def test_evaluate_refuses_a_crafted_checkpoint(tmp_path, capsys, blob_pair):
    from lf2.cli import main

    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pt"
    bad.write_bytes(_crafted_bytes(marker))
    rc = main(["evaluate", "--checkpoint", str(bad), "--manifest", str(blob_pair[1]), "--out",
               str(tmp_path / "m.json")])
    assert rc == 1 and not marker.exists()
    assert "refusing to load" in capsys.readouterr().err


def _crafted_bytes(marker: Path) -> bytes:
    code = textwrap.dedent(f"""
        import io, sys, torch
        class Crafted:
            def __reduce__(self):
                return (open, ({str(marker)!r}, "w"))
        buf = io.BytesIO()
        torch.save({{"format": "lf2-checkpoint-v1", "student": Crafted()}}, buf)
        sys.stdout.buffer.write(buf.getvalue())
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout


# ------------------------------------------------------------------ integrity


def test_flipped_tensor_bytes_are_named(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, _payload())
    _flip_bytes(path, _member_offset(path, "data/0") + 8)
    with pytest.raises(CheckpointDamaged, match=r"model\.pt is damaged: archive member 'archive/data/0'"):
        load_checkpoint(path)


def test_damaged_state_is_set_aside_and_the_run_restarts(tmp_path, caplog):
    state = tmp_path / "state.pt"
    save_checkpoint(state, _payload())
    _flip_bytes(state, _member_offset(state, "data/1"))
    with caplog.at_level(logging.WARNING, logger="lf2.train.checkpoint"):
        assert resumable_state(state, "abc") is None
    assert not state.exists() and (tmp_path / "state.pt.damaged").is_file()
    assert "state.pt is damaged" in caplog.text and "starting from scratch" in caplog.text


def test_truncated_state_is_set_aside(tmp_path):
    state = tmp_path / "state.pt"
    save_checkpoint(state, _payload())
    state.write_bytes(state.read_bytes()[:500])
    assert resumable_state(state, "abc") is None
    assert (tmp_path / "state.pt.damaged").is_file()


def test_intact_state_resumes(tmp_path):
    save_checkpoint(tmp_path / "state.pt", _payload())
    assert resumable_state(tmp_path / "state.pt", "abc")["epoch"] == 1


# ------------------------------------------------------------------ temporaries


KILLED_WRITE = textwrap.dedent("""
    import os, signal, sys, torch
    from lf2.train import checkpoint

    real_save = torch.save
    def dying_save(obj, fh):  # write part of the archive, then die like kill -9
        real_save(obj, fh)
        fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    checkpoint.torch.save = dying_save
    checkpoint.save_checkpoint(sys.argv[1], {"student": {"w": torch.zeros(1000)}})
""")


def test_killed_write_leaves_only_a_temporary_that_the_next_run_removes(tmp_path):
    from conftest import tiny_params

    from lf2.train.common import start_run

    run_dir = tmp_path / "runs" / "pretrain"
    save_checkpoint(run_dir / "state.pt", _payload())
    before = sha256_file(run_dir / "state.pt")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(run_dir / "state.pt")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == -signal.SIGKILL, res.stderr
    leftovers = stale_temporaries(run_dir)
    assert [p.name.startswith(".state.pt.") and p.name.endswith(".pt.tmp") for p in leftovers] == [True]
    assert sha256_file(run_dir / "state.pt") == before  # the final name is never half-written
    (run_dir / "notes.txt").write_text("kept")
    start_run(tiny_params(tmp_path), run_dir / "model.pt", {"stage": "pretrain"})
    assert stale_temporaries(run_dir) == [] and (run_dir / "notes.txt").is_file()
    assert (run_dir / "state.pt").is_file()


# ------------------------------------------------------------------ refused writes


def test_read_only_folder_is_named(tmp_path, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):  # what mkstemp raises in a read-only folder (tests may run as root)
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError, match=r"cannot write .*model\.pt: permission denied .*read-only"):
        save_checkpoint(tmp_path / "model.pt", _payload())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_for_real(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="permission denied"):
            atomic_write_text(ro / "x.txt", "x")
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("failure", [
    RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                 "data/0: file write failed"),
    OSError(errno.ENOSPC, "No space left on device"),
])
def test_full_disk_is_named_and_leaves_nothing(tmp_path, monkeypatch, failure):
    from lf2.train import checkpoint

    def full_disk(obj, fh):
        fh.write(b"PK partial archive")
        raise failure

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(OutputError, match=r"cannot write .*state\.pt: .*(space|disk is full)"):
        save_checkpoint(tmp_path / "state.pt", {"student": {}})
    assert list(tmp_path.iterdir()) == []


def test_cli_prints_refused_writes_without_traceback(tmp_path, monkeypatch, capsys):
    from lf2.cli import main
    from lf2.commands import params as params_cmd

    def refuse(args):
        raise OutputError("cannot write x: no space left")

    monkeypatch.setattr(params_cmd, "run", refuse)
    assert main(["params", "--params", str(ROOT / "params" / "smoke.yaml")]) == 1
    assert "lf2 params: error: cannot write x: no space left" in capsys.readouterr().err


def test_own_temporaries_only_in_a_shared_folder(tmp_path):
    from lf2.io import remove_stale_temporaries

    mine, other = tmp_path / ".direct.json.abcd1234.json.tmp", tmp_path / ".lf2_m6.json.wxyz5678.json.tmp"
    for p in (mine, other):
        p.write_text("{")
    assert remove_stale_temporaries(tmp_path, "direct.json") == [mine]
    assert other.exists() and stale_temporaries(tmp_path) == [other]
