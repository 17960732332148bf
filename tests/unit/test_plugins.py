"""deploykit.plugins: registry from explicit plugins, validation of registrations, entry-point loading."""

from __future__ import annotations

import dataclasses
import importlib.metadata as md
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

import deploykit.plugins as plugins_mod
from deploykit.backend import Backend
from deploykit.errors import DeployError, TargetError
from deploykit.hookspecs import hookimpl
from deploykit.plugins import Registry, load_entrypoint_plugins, new_plugin_manager
from deploykit.quant.scheme import QuantScheme
from deploykit.targets import TargetProfile

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
BUILTIN_TARGETS = {"host", "rpi4", "rpi5", "coral-usb", "coral-devboard", "jetson-nano", "jetson-orin-nano",
                   "ncs2", "intel-cpu", "intel-npu"}


# --------------------------------------------------------------------------- fakes
class FakeBackend(Backend):
    name = "fakevendor"
    description = "a vendor backend used by tests"
    precisions = ("fp32",)
    runtime = "fakeruntime"
    runner_template = "runner_fake.py.j2"


def _fake_profile(registry: Registry, **changes) -> TargetProfile:
    base = registry.targets["host"]
    fields = {"name": "fake-board", "backend": "fakevendor", "description": "Fake board", "source": "fake.toml"}
    fields.update(changes)
    return dataclasses.replace(base, **fields)


class FakePlugin:
    """A plugin *object* (not a module) with hookimpls, as an outside vendor could write it."""

    __version__ = "9.9.9"

    _count = 0

    def __init__(self, backends=(), targets=()):
        FakePlugin._count += 1
        self.__name__ = f"fakeplugin{FakePlugin._count}"  # pluggy's plugin name: unique per object
        self._backends = list(backends)
        self._targets = list(targets)

    @hookimpl
    def register_backends(self, register):
        for b in self._backends:
            register(b)

    @hookimpl
    def register_targets(self, register):
        for t in self._targets:
            register(t)


# --------------------------------------------------------------------------- the in-repo plugins
def test_registry_from_in_repo_plugins(registry):
    assert set(registry.targets) == BUILTIN_TARGETS
    assert "onnxruntime" in registry.backends
    backend = registry.backend_for(registry.target("host"))
    assert backend.name == "onnxruntime" and issubclass(backend, Backend)
    assert backend.is_installed()
    assert set(registry.plugins.values()) == {"0.1.0"}
    assert len(registry.plugins) == 2


def test_every_builtin_profile_names_a_known_backend(registry):
    known = {"onnxruntime", "tflite", "edgetpu", "tensorrt", "openvino"}
    assert {p.backend for p in registry.targets.values()} <= known


def test_registry_from_no_plugins_is_empty():
    reg = Registry.from_plugins([])
    assert reg.backends == {} and reg.targets == {} and reg.plugins == {}


def test_same_plugin_registered_twice_is_refused():
    import deploykit_profiles

    with pytest.raises(ValueError):
        Registry.from_plugins([deploykit_profiles, deploykit_profiles])


# --------------------------------------------------------------------------- a fake vendor plugin
def test_fake_plugin_registers_a_backend_and_a_target(registry):
    import deploykit_profiles

    profile = _fake_profile(registry)
    reg = Registry.from_plugins([deploykit_profiles, FakePlugin([FakeBackend], [profile])])
    assert reg.backends == {"fakevendor": FakeBackend}
    assert reg.target("fake-board") is profile
    assert reg.backend_for(profile) is FakeBackend
    assert BUILTIN_TARGETS < set(reg.targets)
    assert "9.9.9" in reg.plugins.values()


def test_identical_target_registered_twice_is_fine(registry):
    profile = _fake_profile(registry)
    reg = Registry.from_plugins([FakePlugin([], [profile]), FakePlugin([], [dataclasses.replace(profile)])])
    assert reg.targets["fake-board"] == profile


def test_same_backend_class_from_two_plugins_is_fine():
    reg = Registry.from_plugins([FakePlugin([FakeBackend]), FakePlugin([FakeBackend])])
    assert reg.backends == {"fakevendor": FakeBackend}


# --------------------------------------------------------------------------- invalid registrations
class NotABackend:
    name = "nope"
    runner_template = "x.j2"


class NoName(Backend):
    runner_template = "x.j2"


class NoTemplate(Backend):
    name = "notemplate"


class Int8WithoutScheme(Backend):
    name = "int8noscheme"
    precisions = ("fp32", "int8")
    runner_template = "x.j2"


class NoPrecisions(Backend):
    name = "noprecisions"
    precisions = ()
    runner_template = "x.j2"


@pytest.mark.parametrize(
    "thing, match",
    [
        (NotABackend, "not a deploykit.backend.Backend subclass"),
        (FakeBackend(None), "not a deploykit.backend.Backend subclass"),  # an instance, not the class
        ("onnxruntime", "not a deploykit.backend.Backend subclass"),
        (NoName, "name is empty"),
        (NoTemplate, "runner_template is empty"),
        (Int8WithoutScheme, "int8 listed in precisions but quant_scheme is None"),
        (NoPrecisions, "precisions is empty"),
    ],
    ids=["not-subclass", "instance", "string", "no-name", "no-template", "int8-no-scheme", "no-precisions"],
)
def test_invalid_backend_registration(thing, match):
    with pytest.raises(DeployError, match=match):
        Registry.from_plugins([FakePlugin([thing])])


def test_validation_names_the_class_and_every_problem():
    class Broken(Backend):
        precisions = ("int8",)

    with pytest.raises(DeployError) as ei:
        Registry.from_plugins([FakePlugin([Broken])])
    msg = str(ei.value)
    assert "Broken" in msg
    assert "name is empty" in msg and "quant_scheme is None" in msg and "runner_template is empty" in msg


def test_int8_with_scheme_is_valid():
    class Int8Ok(Int8WithoutScheme):
        name = "int8ok"
        quant_scheme = QuantScheme()

    reg = Registry.from_plugins([FakePlugin([Int8Ok])])
    assert "int8ok" in reg.backends


def test_two_backend_classes_with_one_name_are_refused():
    class Other(FakeBackend):
        pass

    with pytest.raises(DeployError, match="two plugins register a backend named 'fakevendor'"):
        Registry.from_plugins([FakePlugin([FakeBackend]), FakePlugin([Other])])


def test_non_profile_target_registration_is_refused():
    with pytest.raises(DeployError, match="not a TargetProfile"):
        Registry.from_plugins([FakePlugin([], [{"name": "dict-board"}])])


def test_duplicate_target_with_different_content_is_refused(registry):
    import deploykit_profiles

    clash = _fake_profile(registry, name="rpi4", cores=99, source="vendor.toml")
    with pytest.raises(TargetError, match=r"target 'rpi4' is defined twice") as ei:
        Registry.from_plugins([deploykit_profiles, FakePlugin([], [clash])])
    assert "rpi4.toml" in str(ei.value) and "vendor.toml" in str(ei.value)  # names both sources
    assert isinstance(TargetError("x"), DeployError)


# --------------------------------------------------------------------------- lookups
@pytest.mark.parametrize(
    "name, suggested",
    [("rpi", ["rpi4", "rpi5"]), ("jetson-nan", ["jetson-nano"]), ("coral", ["coral-usb"]), ("RPI4", [])],
)
def test_unknown_target_suggests_close_names(registry, name, suggested):
    with pytest.raises(TargetError) as ei:
        registry.target(name)
    msg = str(ei.value)
    assert f"unknown target {name!r}" in msg and "deploykit targets" in msg
    for s in suggested:
        assert repr(s) in msg
    if suggested:
        assert "did you mean" in msg


def test_unknown_target_without_any_close_name(registry):
    with pytest.raises(TargetError) as ei:
        registry.target("zzzzzzzz")
    assert "did you mean" not in str(ei.value)


def test_backend_for_missing_backend_says_how_to_install():
    import deploykit_profiles

    reg = Registry.from_plugins([deploykit_profiles])
    with pytest.raises(TargetError) as ei:
        reg.backend_for(reg.target("rpi4"))
    msg = str(ei.value)
    assert "'rpi4' needs the 'tflite' backend" in msg
    assert "pip install 'deploykit[tflite]'" in msg or "add 'tflite' to DEPLOYKIT_PLUGINS" in msg


def _extras() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return set(data["project"].get("optional-dependencies", {}))


def test_backend_for_hint_names_an_existing_extra_or_the_env_variable():
    import deploykit_profiles

    reg = Registry.from_plugins([deploykit_profiles])
    with pytest.raises(TargetError) as ei:
        reg.backend_for(reg.target("host"))
    msg = str(ei.value)
    assert "deploykit[onnxruntime]" not in msg or "onnxruntime" in _extras()
    assert "onnxruntime" in _extras() or "DEPLOYKIT_PLUGINS" in msg or "plugin package that provides" in msg


# --------------------------------------------------------------------------- entry points + DEPLOYKIT_PLUGINS
def _deploykit_entry_points() -> set[str]:
    return {ep.name for ep in md.entry_points(group=plugins_mod.ENTRY_POINT_GROUP)}


needs_entry_points = pytest.mark.skipif(
    not {"profiles", "onnxruntime"} <= _deploykit_entry_points(),
    reason="deploykit is not installed (no 'deploykit' entry points)",
)


@needs_entry_points
@pytest.mark.parametrize(
    "value, expected",
    [
        ("profiles,onnxruntime", ["onnxruntime", "profiles"]),
        (" onnxruntime , ", ["onnxruntime"]),
        ("profiles", ["profiles"]),
        ("", []),
        ("does-not-exist", []),
    ],
)
def test_env_variable_limits_entry_point_loading(monkeypatch, value, expected):
    monkeypatch.setenv("DEPLOYKIT_PLUGINS", value)
    pm = new_plugin_manager()
    assert load_entrypoint_plugins(pm) == expected
    assert sorted(name for name, _ in pm.list_name_plugin()) == expected
    reg = Registry.from_manager(pm)
    assert ("onnxruntime" in reg.backends) == ("onnxruntime" in expected)
    assert (set(reg.targets) == BUILTIN_TARGETS) if "profiles" in expected else (reg.targets == {})


@needs_entry_points
def test_loading_twice_does_not_register_twice(monkeypatch):
    monkeypatch.setenv("DEPLOYKIT_PLUGINS", "profiles")
    pm = new_plugin_manager()
    assert load_entrypoint_plugins(pm) == ["profiles"]
    assert load_entrypoint_plugins(pm) == []


class _FakeEntryPoint:
    def __init__(self, name, obj=None, error=None):
        self.name, self.value, self._obj, self._error = name, f"fake_{name}", obj, error

    def load(self):
        if self._error:
            raise self._error
        return self._obj


def test_unset_env_loads_every_entry_point(monkeypatch, registry):
    monkeypatch.delenv("DEPLOYKIT_PLUGINS", raising=False)
    eps = [_FakeEntryPoint("b", FakePlugin([FakeBackend])), _FakeEntryPoint("a", FakePlugin([], [_fake_profile(registry)]))]
    monkeypatch.setattr(plugins_mod.md, "entry_points", lambda group: eps if group == "deploykit" else [])
    pm = new_plugin_manager()
    assert load_entrypoint_plugins(pm) == ["a", "b"]  # sorted by name
    reg = Registry.from_manager(pm)
    assert reg.plugins == {"a": "9.9.9", "b": "9.9.9"}
    assert reg.backend_for(reg.target("fake-board")) is FakeBackend


def test_broken_plugin_import_is_a_deploy_error(monkeypatch):
    monkeypatch.setenv("DEPLOYKIT_PLUGINS", "broken")
    eps = [_FakeEntryPoint("broken", error=ImportError("No module named 'vendor_sdk'"))]
    monkeypatch.setattr(plugins_mod.md, "entry_points", lambda group: eps)
    with pytest.raises(DeployError, match=r"plugin 'broken' \(fake_broken\) failed to import: No module named 'vendor_sdk'"):
        load_entrypoint_plugins(new_plugin_manager())


def test_unselected_broken_plugin_is_never_imported(monkeypatch):
    monkeypatch.setenv("DEPLOYKIT_PLUGINS", "good")
    eps = [_FakeEntryPoint("broken", error=ImportError("boom")), _FakeEntryPoint("good", SimpleNamespace())]
    monkeypatch.setattr(plugins_mod.md, "entry_points", lambda group: eps)
    assert load_entrypoint_plugins(new_plugin_manager()) == ["good"]


def test_default_registry_is_cached_and_refreshable(monkeypatch):
    monkeypatch.setenv("DEPLOYKIT_PLUGINS", "")
    monkeypatch.setattr(plugins_mod, "_DEFAULT", None)
    first = plugins_mod.default_registry()
    assert plugins_mod.default_registry() is first
    assert plugins_mod.default_registry(refresh=True) is not first


def test_every_package_of_the_source_tree_is_shipped():
    """A subpackage missing from pyproject's list would be absent from a wheel install."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    conf = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "deploykit").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
    data = conf["package-data"]
    for pkg in found:
        if (root / pkg.replace(".", "/") / "templates").is_dir():  # a data-only package of its own
            assert f"{pkg}.templates" in listed and data.get(f"{pkg}.templates") == ["*.j2"], pkg
