"""The one epoch driver of both training stages: resume, epochs, records, state saving.

A stage (pre-training, fine-tuning) gives :func:`drive_epochs` an :class:`EpochStage`: how
to run one epoch (returning its record for ``epochs.jsonl`` and a log line), what of the
trainer goes into the resume state, and how to restore it. The driver owns the rest, the
same for both: continue from ``state.pt`` when its fingerprint matches, rewrite the epoch
log (a fresh run never shows a stale one), and after every epoch write the resume state
and the log atomically, in that order, so a kill between two epochs loses nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lf2.train import runtime
from lf2.train.checkpoint import resumable_state, save_checkpoint
from lf2.train.common import RunFiles
from lf2.train.records import write_epoch_log

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochStage:
    """What one training stage tells the driver."""

    label: str                                             # for the log: "pre-training", a row
    epochs: int
    header: dict[str, Any]                                 # stage and row of state.pt
    run_epoch: Callable[[int], tuple[dict[str, Any], str]]  # epoch -> (record, log line)
    state: Callable[[], dict[str, Any]]                    # the trainer's part of state.pt, at save time
    restore: Callable[[dict[str, Any]], None]              # load it back from a state.pt


def drive_epochs(files: RunFiles, stage: EpochStage, *, resume: bool) -> list[dict[str, Any]]:
    """Run the epochs not done yet; return every epoch's record (resumed ones included)."""
    start, records = 1, []
    state = resumable_state(files.state, files.fingerprint) if resume else None
    if state is not None:
        stage.restore(state)
        runtime.set_rng_state(state["rng"])
        start, records = state["epoch"] + 1, state["records"]
        log.info("resuming %s from epoch %d", stage.label, start)
    write_epoch_log(files.log, records)  # a fresh run never shows a stale log
    for epoch in range(start, stage.epochs + 1):
        t0 = time.perf_counter()
        record, line = stage.run_epoch(epoch)
        records.append(record)
        save_checkpoint(files.state, {**stage.header, "fingerprint": files.fingerprint, "epoch": epoch,
                                      **stage.state(), "rng": runtime.rng_state(), "records": records})
        write_epoch_log(files.log, records)
        log.info("epoch %d/%d  %s  %.1fs", epoch, stage.epochs, line, time.perf_counter() - t0)
    if start > stage.epochs:
        log.info("%s already complete in %s; writing the final checkpoint", stage.label, files.state)
    return records
