"""Plugin manager: loads plugins from the ``deploykit`` entry-point group and collects what they register.

``DEPLOYKIT_PLUGINS`` (comma-separated entry-point names) limits which plugins load, e.g.
``DEPLOYKIT_PLUGINS=profiles,onnxruntime``. An empty value loads none. Tests build fresh
registries with ``Registry.from_plugins([...])`` and never autoload.
"""

from __future__ import annotations

import importlib.metadata as md
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import pluggy

from deploykit import hookspecs
from deploykit.backend import Backend, LazyBackend
from deploykit.errors import DeployError, TargetError
from deploykit.targets import TargetProfile, suggest

ENTRY_POINT_GROUP = "deploykit"
ENV_VAR = "DEPLOYKIT_PLUGINS"


def new_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with deploykit's hookspecs and no plugins loaded."""
    pm = pluggy.PluginManager("deploykit")
    pm.add_hookspecs(hookspecs)
    return pm


def _selected_names() -> set[str] | None:
    raw = os.environ.get(ENV_VAR)
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


def load_entrypoint_plugins(pm: pluggy.PluginManager) -> list[str]:
    """Load plugins from the entry-point group (limited by ``DEPLOYKIT_PLUGINS``)."""
    wanted = _selected_names()
    loaded = []
    for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if wanted is not None and ep.name not in wanted:
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
        except Exception as e:  # noqa: BLE001 - a broken third-party plugin must not kill the CLI
            raise DeployError(f"plugin {ep.name!r} ({ep.value}) failed to import: {e}") from e
        pm.register(plugin, name=ep.name)
        loaded.append(ep.name)
    return loaded


BackendEntry = Union[type[Backend], LazyBackend]


class Backends(Mapping[str, type[Backend]]):
    """Registered backends by name. Reading one imports its class (a :class:`LazyBackend` is
    imported on first use); :meth:`declared` answers name / host-module questions without importing."""

    def __init__(self) -> None:
        self._entries: dict[str, BackendEntry] = {}
        self._classes: dict[str, type[Backend]] = {}

    def add(self, entry: BackendEntry) -> None:
        if isinstance(entry, LazyBackend):
            if not entry.name or ":" not in entry.path:
                raise DeployError(f"register_backends got {entry!r}: a LazyBackend needs a name and a 'module:Class' path")
        elif isinstance(entry, type) and issubclass(entry, Backend):
            entry.validate_class()
        else:
            raise DeployError(f"register_backends got {entry!r}, which is not a deploykit.backend.Backend subclass")
        old = self._entries.get(entry.name)
        if old is not None and old != entry:
            raise DeployError(f"two plugins register a backend named {entry.name!r}")
        self._entries[entry.name] = entry

    def declared(self, name: str) -> BackendEntry | None:
        """The registered class or :class:`LazyBackend` (no import), ``None`` when not registered."""
        return self._entries.get(name)

    def __getitem__(self, name: str) -> type[Backend]:
        if name not in self._classes:
            entry = self._entries[name]
            self._classes[name] = entry.load() if isinstance(entry, LazyBackend) else entry
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Backends({sorted(self._entries)})"


@dataclass
class Registry:
    """Backends and targets contributed by the loaded plugins."""

    backends: Backends = field(default_factory=Backends)
    targets: dict[str, TargetProfile] = field(default_factory=dict)
    plugins: dict[str, str] = field(default_factory=dict)  # plugin name -> version

    @classmethod
    def from_manager(cls, pm: pluggy.PluginManager) -> Registry:
        reg = cls()

        def register_backend(backend: BackendEntry) -> None:
            reg.backends.add(backend)

        def register_target(profile: TargetProfile) -> None:
            if not isinstance(profile, TargetProfile):
                raise DeployError(f"register_targets got {profile!r}, which is not a TargetProfile")
            if profile.name in reg.targets and reg.targets[profile.name] != profile:
                raise TargetError(
                    f"target {profile.name!r} is defined twice ({reg.targets[profile.name].source} and {profile.source})"
                )
            reg.targets[profile.name] = profile

        pm.hook.register_backends(register=register_backend)
        pm.hook.register_targets(register=register_target)
        for name, plugin in pm.list_name_plugin():
            reg.plugins[name] = _plugin_version(plugin)
        return reg

    @classmethod
    def from_plugins(cls, plugins: Iterable[Any]) -> Registry:
        """A registry from explicit plugin objects/modules (no entry points)."""
        pm = new_plugin_manager()
        for p in plugins:
            pm.register(p, name=plugin_name(p))
        return cls.from_manager(pm)

    def target(self, name: str) -> TargetProfile:
        if name not in self.targets:
            raise TargetError(
                f"unknown target {name!r}{suggest(name, sorted(self.targets))} "
                "(run 'deploykit targets' to list them)"
            )
        return self.targets[name]

    def backend_for(self, profile: TargetProfile) -> type[Backend]:
        if profile.backend not in self.backends:
            raise TargetError(
                f"target {profile.name!r} needs the {profile.backend!r} backend, which is not loaded; {install_hint(profile.backend)}"
            )
        return self.backends[profile.backend]


def install_hint(backend: str) -> str:
    """How to get a backend: the env variable if its plugin is installed but not selected, else pip."""
    names = {ep.name for ep in md.entry_points(group=ENTRY_POINT_GROUP)}
    wanted = _selected_names()
    if backend in names and wanted is not None and backend not in wanted:
        return f"its plugin is installed but {ENV_VAR} does not list it: add '{backend}' to {ENV_VAR}"
    try:
        extras = set(md.metadata("deploykit").get_all("Provides-Extra") or [])
    except md.PackageNotFoundError:
        extras = set()
    if backend in extras:
        return f"install it with: pip install 'deploykit[{backend}]'"
    return f"install the plugin package that provides the {backend!r} backend"


def plugin_name(plugin: Any) -> str:
    """The entry-point-style name of a plugin module: ``__plugin_name__``, else the module name
    without its ``deploykit_`` prefix (``deploykit_acme`` -> ``acme``)."""
    explicit = getattr(plugin, "__plugin_name__", None)
    if explicit:
        return str(explicit)
    mod = getattr(plugin, "__name__", "") or type(plugin).__module__
    return mod.split(".")[-1].removeprefix("deploykit_")


def _plugin_version(plugin: Any) -> str:
    version = getattr(plugin, "__version__", None)
    if version:
        return str(version)
    mod = getattr(plugin, "__name__", "") or type(plugin).__module__
    top = mod.split(".")[0]
    try:
        dists = md.packages_distributions().get(top, [])
        if dists:
            return md.version(dists[0])
    except Exception:  # noqa: BLE001
        pass
    return "unknown"


_DEFAULT: Registry | None = None


def default_registry(refresh: bool = False) -> Registry:
    """The registry of entry-point plugins (cached per process)."""
    global _DEFAULT
    if _DEFAULT is None or refresh:
        pm = new_plugin_manager()
        load_entrypoint_plugins(pm)
        _DEFAULT = Registry.from_manager(pm)
    return _DEFAULT
