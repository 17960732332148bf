"""deploykit plugin for the ACME board.

deploykit finds this module through the ``deploykit`` entry-point group (see pyproject.toml) and
calls its two hooks. Keep this module cheap to import: no onnxruntime, no toolchain here.
"""

from __future__ import annotations

from pathlib import Path

from deploykit.hookspecs import hookimpl
from deploykit.targets import load_profile

from deploykit_acme.backend import AcmeBackend

__version__ = "0.1.0"

PROFILES = Path(__file__).parent / "profiles"


@hookimpl
def register_backends(register):
    """Offer the ``acme`` backend to deploykit."""
    register(AcmeBackend)


@hookimpl
def register_targets(register):
    """Offer the device profiles shipped with this plugin (``acme-board``)."""
    for path in sorted(PROFILES.glob("*.toml")):
        register(load_profile(path))
