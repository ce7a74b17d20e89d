"""Atomic file output and small I/O helpers.

Every file a stage writes appears atomically: it is written to a temporary name in the
same folder and renamed into place, so a killed run never leaves a half-written output
that a workflow manager could take as done.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lf2.errors import OutputError

log = logging.getLogger(__name__)

#: ``atomic_path``'s temporaries: ``.<final name>.<8 random chars><suffix>``, where the suffix
#: is ``<final suffix>.tmp`` or one given that the final name also ends with (``.png``)
_TEMP_NAME = re.compile(r"^\.(?P<final>.+)\.[A-Za-z0-9_]{8}(?P<suffix>(\.[A-Za-z0-9]+)+)$")
_PERMISSION = (errno.EACCES, errno.EPERM, errno.EROFS)
_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    A write refused for want of permission or space raises :class:`OutputError` naming
    ``path`` and the cause (see :func:`output_errors`); nothing is left behind.
    """
    final = Path(path)
    with output_errors(final):
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{final.name}.", suffix=suffix or (final.suffix + ".tmp"), dir=final.parent
        )
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            # mkstemp creates 0600 files; give the output the mode a plain open() would have
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)
            os.replace(tmp_path, final)
        finally:
            if tmp_path.exists():
                tmp_path.unlink()


def _is_torch_write_failure(exc: BaseException) -> bool:
    # torch.save reports a failed write as RuntimeError("[enforce fail at inline_container.cc:N]
    # ... PytorchStreamWriter failed writing file ...: file write failed"), without an errno
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("inline_container" in text or "PytorchStreamWriter" in text)


def _free_space(folder: Path) -> str:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.0f} MiB free"
    except OSError:
        return "free space unknown"


def os_error_message(exc: OSError, path: str | os.PathLike[str] | None = None,
                     verb: str = "write") -> str | None:
    """A message naming the path and saying "permission" or "space" for such an OSError, else
    None (other errors are not ours to explain)."""
    target = Path(path) if path is not None else Path(exc.filename or "?")
    if exc.errno in _PERMISSION:
        return (f"cannot {verb} {target}: permission denied ({exc.strerror}); the folder "
                f"{target.parent} is read-only or not yours: make it writable or choose another path")
    if exc.errno in _SPACE:
        return (f"cannot {verb} {target}: no space left ({exc.strerror}; {_free_space(target.parent)} "
                f"at {target.parent}); free some space or choose another path, then rerun")
    return None


@contextlib.contextmanager
def output_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn a refused write into an :class:`OutputError` that names ``path`` and says why.

    Permission (``EACCES``, ``EPERM``, read-only file system ``EROFS``) and space (``ENOSPC``,
    quota, file too large, and torch's errno-less ``inline_container`` write failure) are
    named; other errors pass unchanged.
    """
    target = Path(path)
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        message = os_error_message(exc, target)
        if message is None:
            raise
        raise OutputError(message) from exc
    except RuntimeError as exc:
        if not _is_torch_write_failure(exc):
            raise
        raise OutputError(
            f"cannot write {target}: the write failed ({exc}); most likely the disk is full "
            f"({_free_space(target.parent)} at {target.parent}): free some space and rerun"
        ) from exc


def stale_temporaries(folder: str | os.PathLike[str], final_name: str | None = None) -> list[Path]:
    """Temporaries that :func:`atomic_path` left in ``folder`` when a writer was killed (only
    those of ``final_name`` when given)."""
    d = Path(folder)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_file() and _is_temporary(p.name, final_name))


def _is_temporary(name: str, final_name: str | None = None) -> bool:
    m = _TEMP_NAME.match(name)
    if m is None or (final_name is not None and m["final"] != final_name):
        return False
    suffix = m["suffix"]
    return suffix.endswith(".tmp") or m["final"].endswith(suffix)


def remove_stale_temporaries(folder: str | os.PathLike[str], final_name: str | None = None) -> list[Path]:
    """Delete the temporaries a killed writer left in ``folder`` (a stage calls this at start:
    on a folder only it writes to, or with ``final_name`` for its own file in a shared
    folder). Returns what was removed."""
    removed = []
    for p in stale_temporaries(folder, final_name):
        with contextlib.suppress(FileNotFoundError):
            size = p.stat().st_size
            p.unlink()
            removed.append(p)
            log.info("removed %s (%.1f MiB), left by a killed write", p, size / 2**20)
    return removed


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _json_default(obj: Any) -> Any:
    # numpy scalars/arrays and paths appear in logs and metrics
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
