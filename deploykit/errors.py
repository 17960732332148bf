"""User-facing errors.

Every problem caused by the user's input is raised as a :class:`DeployError`. The CLI prints it as
one line (``error: <message>``) and exits with a non-zero code; tracebacks only appear with
``--debug``. Messages say what is wrong *and* how to fix it.
"""

from __future__ import annotations


class DeployError(Exception):
    """An error the user can fix. ``str(err)`` is the one line shown after ``error:``."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})" if hint else message)


class ModelError(DeployError):
    """The input model cannot be read or is not valid."""


class TargetError(DeployError):
    """Unknown target or invalid target profile."""


class CalibrationError(DeployError):
    """Calibration data is missing or does not fit the model."""


class UnsupportedError(DeployError):
    """The model uses something the chosen backend cannot lower."""


class BundleError(DeployError):
    """The output folder or an existing bundle is not usable."""


class ToolchainError(DeployError):
    """A runtime or toolchain the step needs is not installed."""

    exit_code = 3
