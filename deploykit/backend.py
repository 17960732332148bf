"""The backend contract: a class whose attributes declare capabilities, plus a few methods.

To add a backend, subclass :class:`Backend`, fill in the class attributes, implement
:meth:`Backend.lower`, and register the class from a plugin's ``register_backends`` hook.
Everything heavy (toolchains, runtimes) is imported inside methods, never at module import.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from deploykit.errors import DeployError
from deploykit.quant.scheme import QuantScheme

if TYPE_CHECKING:  # the graph stack (onnx_ir, numpy) stays out of `deploykit --help/targets/doctor`
    import onnx_ir as ir

    from deploykit.ir.info import TensorSpec
    from deploykit.quant.calibration import SampleSet
    from deploykit.targets import TargetProfile


class Support(str, enum.Enum):
    """Support status of one node on a backend."""

    SUPPORTED = "supported"
    REWRITE = "rewrite"  # supported after a backend rewrite
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class OpRule:
    """One row of a backend's op table.

    :ivar status: default status of the op.
    :ivar note: shown by ``deploykit inspect`` (e.g. "lowered as Mul+Add").
    :ivar check: optional ``check(node) -> reason | None``; a reason makes this node unsupported.
    """

    status: Support = Support.SUPPORTED
    note: str = ""
    check: Callable[[ir.Node], str | None] | None = None


SUPPORTED = OpRule()


@dataclass
class NodeSupport:
    """The result of support analysis for one node."""

    node: str
    op_type: str
    status: Support
    reason: str = ""
    device: str = ""  # where it runs on targets with accelerators ("tpu", "cpu", ...)

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "op_type": self.op_type, "status": self.status.value,
                "reason": self.reason, "device": self.device}


@dataclass
class BuildOptions:
    """User options of one build (what the CLI passed)."""

    precision: str
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    calibration: str | None = None
    io: str = "float"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = {"precision": self.precision, "input_shapes": self.input_shapes, "io": self.io,
             "calibration": Path(self.calibration).name if self.calibration else None}
        d.update(self.extra)
        return d


@dataclass
class BuildContext:
    """What a backend gets to lower a model.

    :ivar model: the canonicalized fp32 model (after :meth:`Backend.prepare`).
    :ivar profile: the target profile.
    :ivar options: user build options; ``options.precision`` is the precision to produce.
    :ivar workdir: the staging bundle folder; write artifacts here.
    :ivar calibration: calibration samples (``None`` unless given); int8 needs them.
    :ivar quant: for int8 builds, the engine's result (``deploykit.quant.engine.QuantResult``):
        ``params`` {tensor name: QuantParams} following the backend's ``quant_scheme``,
        ``fallback`` (node names to keep in float), ``qdq_model`` (QDQ ONNX), ``report``.
    :ivar log: report progress or notes to the user (one line each).
    """

    model: ir.Model
    profile: TargetProfile
    options: BuildOptions
    workdir: Path
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    calibration: SampleSet | None = None
    quant: Any = None
    log: Callable[[str], None] = lambda msg: None
    notes: list[str] = field(default_factory=list)

    def note(self, msg: str) -> None:
        """A note for the user that also goes into the report."""
        self.notes.append(msg)
        self.log(msg)


@dataclass
class Artifact:
    """What :meth:`Backend.lower` produced.

    :ivar files: artifact file names relative to the bundle folder (e.g. ``["model.onnx"]``).
    :ivar inputs/outputs: specs as the runner exposes them (source names, shapes and layout).
    :ivar runner_context: extra variables for the runner template.
    :ivar report: backend-specific report section (goes into report.json).
    """

    files: list[str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    runner_context: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    requirements: list[str] = field(default_factory=list)


class Backend:
    """Base class of all backends. Subclasses override the class attributes below.

    :cvar name: registry name, used by target profiles (``backend = "..."``).
    :cvar description: one line for ``deploykit targets``.
    :cvar precisions: precisions this backend can produce.
    :cvar runtime: the runtime the generated runner uses on the device.
    :cvar host_modules: Python modules needed on the *host* to lower/verify (checked lazily).
    :cvar host_note: what a build on a machine without the device does and cannot do (shown by
        ``deploykit doctor`` next to "ready"), e.g. "verifies with the ONNX Runtime fallback".
    :cvar op_support: op type -> :class:`OpRule`; ops not listed are unsupported. ``None``
        means "every op the ONNX standard defines" (the ONNX Runtime backend).
    :cvar quant_scheme: the int8 scheme the engine must follow (``None``: no int8).
    :cvar min_opset: the model is upgraded to at least this opset before lowering.
    :cvar runner_template: template file name of the generated runner.
    :cvar template_package: package holding the backend's ``templates/`` folder.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    runtime: ClassVar[str] = ""
    host_modules: ClassVar[tuple[str, ...]] = ()
    host_note: ClassVar[str] = ""
    op_support: ClassVar[Mapping[str, OpRule] | None] = {}
    quant_scheme: ClassVar[QuantScheme | None] = None
    min_opset: ClassVar[int] = 7
    runner_template: ClassVar[str] = ""
    template_package: ClassVar[str | None] = None

    def __init__(self, profile: TargetProfile):
        self.profile = profile

    # -- class-level checks -------------------------------------------------------------
    @classmethod
    def validate_class(cls) -> None:
        """Raise if the class does not declare what the core needs."""
        problems = []
        if not cls.name:
            problems.append("name is empty")
        if not cls.precisions:
            problems.append("precisions is empty")
        if "int8" in cls.precisions and cls.quant_scheme is None:
            problems.append("int8 listed in precisions but quant_scheme is None")
        if not cls.runner_template:
            problems.append("runner_template is empty")
        if problems:
            raise DeployError(f"backend class {cls.__module__}.{cls.__qualname__}: " + "; ".join(problems))

    @classmethod
    def missing_host_modules(cls) -> list[str]:
        """Host modules this backend needs that are not importable."""
        return [m for m in cls.host_modules if importlib.util.find_spec(m) is None]

    @classmethod
    def is_installed(cls) -> bool:
        return not cls.missing_host_modules()

    # -- the build steps ----------------------------------------------------------------
    def check_precision(self, precision: str) -> None:
        """Raise a :class:`DeployError` when this target cannot build ``precision``.

        Override to explain *why* a device lacks a precision (e.g. no fast int8) and what to use.
        """
        if precision not in self.precisions or precision not in self.profile.precisions:
            allowed = [p for p in self.profile.precisions if p in self.precisions]
            raise DeployError(
                f"target {self.profile.name!r} does not support --precision {precision}; "
                f"use one of: {', '.join(allowed)}"
            )

    def knows_op(self, domain: str, op_type: str) -> bool:
        """Whether ``domain::op_type`` is an op this backend's converter can even read when
        :attr:`op_support` is ``None`` (default: the ops with an ONNX schema: ai.onnx, ai.onnx.ml).
        Override to add a runtime's own domains (ONNX Runtime's com.microsoft)."""
        import onnx

        return onnx.defs.has(op_type, domain)

    def unknown_op_reason(self, node: ir.Node, functions: set[tuple[str, str]] = frozenset()) -> str | None:
        """Why ``node`` is an op no converter knows (a custom op from an unknown domain), naming the
        op and its domain; ``None`` for standard ops and model-local functions."""
        domain = node.domain or ""
        if domain in ("", "ai.onnx") or (domain, node.op_type) in functions or self.knows_op(domain, node.op_type):
            return None
        return (f"{node.op_type!r} from domain {domain!r} is a custom op (no ONNX schema) that {self.name} cannot "
                "run; replace it with standard ONNX ops, or build for a target whose plugin implements it")

    def custom_ops(self, model: ir.Model) -> list[NodeSupport]:
        """The nodes of :meth:`unknown_op_reason` that :attr:`op_support` does not list either:
        the build refuses them right after import, naming op, domain and target."""
        import onnx_ir as ir

        functions = {(f.domain, f.name) for f in model.functions.values()}
        found = []
        for node in ir.traversal.RecursiveGraphIterator(model.graph):
            op = f"{node.domain}::{node.op_type}"
            reason = None if self.op_support and op in self.op_support else self.unknown_op_reason(node, functions)
            if reason:
                found.append(NodeSupport(node.name or "", op, Support.UNSUPPORTED, reason))
        return found

    def analyze(self, model: ir.Model) -> list[NodeSupport]:
        """Per-node support status, from :attr:`op_support` (override for context rules)."""
        import onnx_ir as ir

        result = []
        functions = {(f.domain, f.name) for f in model.functions.values()}
        for node in ir.traversal.RecursiveGraphIterator(model.graph):
            op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
            if self.op_support is None:
                unknown = self.unknown_op_reason(node, functions)
                result.append(NodeSupport(node.name or "", op, Support.UNSUPPORTED if unknown else Support.SUPPORTED,
                                          unknown or ""))
                continue
            rule = self.op_support.get(op)
            if rule is None:
                reason = self.unknown_op_reason(node, functions) or f"{self.name} has no lowering for {op}"
                result.append(NodeSupport(node.name or "", op, Support.UNSUPPORTED, reason))
                continue
            reason = rule.check(node) if rule.check else None
            if reason:
                result.append(NodeSupport(node.name or "", op, Support.UNSUPPORTED, reason))
            else:
                result.append(NodeSupport(node.name or "", op, rule.status, rule.note))
        return result

    def prepare(self, model: ir.Model, options: BuildOptions) -> ir.Model:
        """Backend rewrites before quantization/lowering (default: opset upgrade)."""
        from deploykit.ir.opset import upgrade_opset

        return upgrade_opset(model, self.min_opset)

    def lower(self, ctx: BuildContext) -> Artifact:
        """Write the artifact(s) into ``ctx.workdir`` and describe them."""
        raise NotImplementedError

    def runner_requirements(self, precision: str) -> list[str]:
        """pip requirement lines for the device (default: the profile's)."""
        return list(self.profile.requirements)

    def verification_unavailable(self) -> str | None:
        """Why the generated runner cannot run on this host (``None`` when it can)."""
        missing = self.missing_host_modules()
        return f"{', '.join(missing)} not installed on this host" if missing else None


@dataclass(frozen=True)
class LazyBackend:
    """A backend registered by import path; its class is imported on first use.

    Importing a backend class pulls in the graph stack (onnx_ir, onnx, numpy): seconds of start-up
    that ``deploykit targets`` and ``deploykit doctor`` do not need, since they only ask for a
    backend's name and host modules. A plugin may register
    ``LazyBackend("acme", "deploykit_acme.backend:AcmeBackend", host_modules=("onnxruntime",))``
    instead of the class; the class must declare the same ``name`` and ``host_modules``.
    """

    name: str
    path: str  # "package.module:ClassName"
    host_modules: tuple[str, ...] = ()
    host_note: str = ""

    def missing_host_modules(self) -> list[str]:
        return [m for m in self.host_modules if importlib.util.find_spec(m) is None]

    def is_installed(self) -> bool:
        return not self.missing_host_modules()

    def load(self) -> type[Backend]:
        """Import the class and check that it matches this declaration."""
        module_name, _, attr = self.path.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise DeployError(f"backend {self.name!r}: cannot import {self.path!r}: {e}") from e
        if not (isinstance(cls, type) and issubclass(cls, Backend)):
            raise DeployError(f"backend {self.name!r}: {self.path!r} is not a deploykit.backend.Backend subclass")
        if cls.name != self.name or tuple(cls.host_modules) != tuple(self.host_modules):
            raise DeployError(f"backend {self.name!r}: {self.path!r} declares name {cls.name!r} and host modules "
                              f"{tuple(cls.host_modules)}, its registration says {self.name!r} and {tuple(self.host_modules)}")
        cls.validate_class()
        return cls
