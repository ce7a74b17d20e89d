"""User-facing errors.

Anything a user can cause (bad params, a missing dataset, a corrupt image, a checkpoint
from another architecture) raises :class:`LF2Error` with a message that names the file,
key or value at fault and says what was expected. The CLI prints it without a traceback.
"""


class LF2Error(Exception):
    """An error caused by input: its message is meant for the user."""


class DatasetError(LF2Error):
    """A dataset folder, manifest or image is missing or malformed."""


class ParamsError(LF2Error):
    """A params file or value is invalid."""


class CheckpointError(LF2Error):
    """A checkpoint is missing, corrupt or incompatible."""


class TrainingError(LF2Error):
    """Training cannot go on (for example a non-finite loss)."""


class OutputError(LF2Error):
    """An output cannot be written (permission, read-only file system, no space)."""


class CheckpointDamaged(CheckpointError):
    """A checkpoint's bytes fail the archive's own checks (bit rot, truncation)."""


class CheckpointRefused(CheckpointError):
    """A file holds objects an lf2 checkpoint never contains: it is not loaded."""
