"""Hook specifications: the whole plugin API of deploykit.

A plugin is any module or object with functions marked ``@deploykit.hookimpl``, registered through
the ``deploykit`` entry-point group (built-in backends use the same group as outside vendors)::

    [project.entry-points.deploykit]
    myvendor = "deploykit_myvendor"

Hooks receive a core-owned ``register`` callback instead of returning values, so one plugin may
register any number of things and the core validates each one as it arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from deploykit.backend import Backend, LazyBackend
    from deploykit.targets import TargetProfile

hookspec = pluggy.HookspecMarker("deploykit")
hookimpl = pluggy.HookimplMarker("deploykit")


@hookspec
def register_backends(register: Callable[[type[Backend] | LazyBackend], None]) -> None:
    """Register backend classes.

    Call ``register(BackendClass)`` once per backend. The class must subclass
    :class:`deploykit.backend.Backend` and set a unique ``name``. Registering a class must be
    cheap: import heavy toolchains lazily inside the backend's methods, never at module import.
    A module that imports onnx_ir/numpy is not cheap (seconds): register
    ``LazyBackend(name, "package.module:Class", host_modules=...)`` instead, and the class is
    imported only when a build, inspect or run needs it (``deploykit targets`` and ``doctor`` never do).

    :param register: core-owned callback taking a :class:`~deploykit.backend.Backend` subclass
        or a :class:`~deploykit.backend.LazyBackend`.
    """


@hookspec
def register_targets(register: Callable[[TargetProfile], None]) -> None:
    """Register device target profiles.

    Call ``register(profile)`` with a :class:`~deploykit.targets.TargetProfile`, usually from
    :func:`deploykit.targets.load_profile` on a TOML file shipped with the plugin. A profile may
    name a backend registered by another plugin; ``deploykit targets`` shows whether it is
    installed.

    :param register: core-owned callback taking a :class:`~deploykit.targets.TargetProfile`.
    """
