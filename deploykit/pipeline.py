"""The build pipeline: import -> canonicalize -> support analysis -> lower -> verify -> bundle.

One way data flow; the backend is reached only through the :class:`~deploykit.backend.Backend`
contract. Progress goes to a :class:`Reporter` (the CLI shows it with rich).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploykit import __version__
from deploykit.backend import Backend, BuildContext, BuildOptions, NodeSupport, Support
from deploykit.bundle.files import sha256_file, write_json, write_npz
from deploykit.bundle.manifest import SAMPLES_EXPECTED, SAMPLES_INPUTS, write_bundle_metadata
from deploykit.bundle.render import render
from deploykit.bundle.staging import StagedOutput, check_output_dir
from deploykit.errors import CalibrationError, DeployError, UnsupportedError
from deploykit.ir import graph_inputs, graph_outputs, load_model, parse_input_shapes
from deploykit.ir.freeze import parse_freeze_inputs, runner_spec
from deploykit.ir.loader import nonfinite_weights
from deploykit import passes
from deploykit.plugins import Registry, default_registry
from deploykit.quant.calibration import SampleSet, load_samples, random_samples
from deploykit.reference import check_loadable, check_pinned_model_loads, ort_run_failures, run_reference
from deploykit.verification import run_bundle, verify_outputs

VERIFY_SAMPLES = 4
COMPRESS_SCAN_SAMPLES = 32
STORED_SAMPLES = VERIFY_SAMPLES  # every held-out sample verification used: `verify` recomputes the same figures


class Reporter:
    """Progress sink. The default one is silent; the CLI's prints stages with rich."""

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        yield

    def log(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass


@dataclass
class BuildRequest:
    model: Path
    target: str
    output: Path | None = None
    precision: str | None = None
    input_shapes: list[str] = field(default_factory=list)
    freeze_inputs: list[str] = field(default_factory=list)  # --freeze-input NAME=VALUE (deploykit.ir.freeze)
    calibration: str | None = None
    force: bool = False
    io: str = "float"
    calibration_samples: int | None = None
    calibration_method: str = "auto"
    accuracy_budget: str | None = None
    images: Any = None  # deploykit.quant.images.ImagePreprocess for image-folder calibration
    compress: str | None = None  # --compress spec (deploykit.compress.parse_spec), None = off
    eval_data: str | None = None  # --eval-data FILE.npz: inputs + labels, never used for calibration
    metric: str | None = None  # --metric (deploykit.quant.task_metrics.parse_metric)
    verify_on: str = "host"  # "emulated": also verify on the emulated device (deploykit.emulate)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class BuildResult:
    out_dir: Path
    manifest: dict[str, Any]
    report: dict[str, Any]


def default_output(model: Path, target: str, precision: str) -> Path:
    return Path.cwd() / f"{model.stem}-{target}-{precision}"


def unsupported_error(support: list[NodeSupport], target: str) -> UnsupportedError:
    bad = [s for s in support if s.status is Support.UNSUPPORTED]
    listed = "; ".join(f"{s.op_type} (node {s.node!r}: {s.reason})" for s in bad[:20])
    more = f"; and {len(bad) - 20} more" if len(bad) > 20 else ""
    return UnsupportedError(
        f"{len(bad)} node(s) cannot run on target {target!r}: {listed}{more} "
        f"(see 'deploykit inspect MODEL --target {target}')"
    )


def calibration_needed(profile, explicit: bool) -> str:
    """The error for int8 without calibration data: whose choice int8 was, and every way forward."""
    others = [p for p in profile.precisions if p != "int8"]
    why = "int8 needs" if explicit else f"target {profile.name!r} builds int8 by default, which needs"
    return (f"{why} calibration data: add --calibration with a .npy of samples stacked on axis 0 (each shaped "
            "like the input without its batch dimension), a .npz with one such array per input, or a folder of "
            "images" + (f"; or build --precision {'|'.join(others)}" if others else f" ({profile.name} runs int8 only)"))


def _split_samples(samples: SampleSet) -> tuple[SampleSet, SampleSet]:
    n = len(samples)
    if n == 1:
        return samples, samples
    return samples.split(min(VERIFY_SAMPLES, max(1, n // 5)))


def build(request: BuildRequest, registry: Registry | None = None, reporter: Reporter | None = None) -> BuildResult:
    """Build one bundle. Raises :class:`DeployError` for anything the user can fix."""
    reporter = reporter or Reporter()
    registry = registry or default_registry()
    profile = registry.target(request.target)
    precision = request.precision or profile.default_precision
    if precision not in profile.precisions:
        if profile.backend in registry.backends:  # the backend may know a better reason (and suggestion)
            registry.backends[profile.backend](profile).check_precision(precision)
        raise DeployError(
            f"target {profile.name!r} does not support --precision {precision}; use one of: {', '.join(profile.precisions)}"
        )
    backend_cls = registry.backend_for(profile)
    missing = backend_cls.missing_host_modules()
    if missing:
        from deploykit.plugins import install_hint

        raise DeployError(f"the {backend_cls.name!r} backend needs {', '.join(missing)} on this machine; "
                          f"{install_hint(backend_cls.name)}")
    backend: Backend = backend_cls(profile)
    backend.check_precision(precision)
    if precision == "int8" and not request.calibration:
        raise CalibrationError(calibration_needed(profile, explicit=request.precision is not None))
    model_path = Path(request.model)
    shapes = parse_input_shapes(request.input_shapes)
    frozen = parse_freeze_inputs(request.freeze_inputs)
    out_dir = Path(request.output) if request.output is not None else default_output(model_path, profile.name, precision)
    protect = [p for p in (model_path, request.calibration) if p]
    check_output_dir(out_dir, request.force, protect)
    compress_spec = None
    if request.compress:
        from deploykit.compress import parse_spec

        compress_spec = parse_spec(request.compress)
    task = _task_budget(request)
    quant_config = None
    if precision == "int8":
        from deploykit.quant.engine import AccuracyBudget, QuantConfig
        from deploykit.quant.ranges import METHODS

        if request.calibration_method not in ("auto", *METHODS):
            raise DeployError(f"unknown --calibration-method {request.calibration_method!r}; use auto, {', '.join(METHODS)}")
        budget = AccuracyBudget.parse(None if task is not None else request.accuracy_budget)
        quant_config = QuantConfig(method=request.calibration_method, budget=budget, task=task,
                                   int32_accumulation=profile.int8_sums_in_int32)
    extra = dict(request.extra)
    if quant_config is not None:
        extra.update({"calibration_method": quant_config.method,
                      "accuracy_budget": str(task if task is not None else quant_config.budget),
                      "calibration_samples": request.calibration_samples})
    if task is not None:
        extra.update({"eval_data": Path(request.eval_data).name, "metric": task.metric.name})
    if compress_spec is not None:
        extra["compress"] = str(compress_spec)
    if request.verify_on != "host":
        if not profile.emulation:
            raise DeployError(f"--verify-on {request.verify_on}: target {profile.name!r} has no emulated device "
                              "(its profile has no [emulation] table); use --verify-on host")
        from deploykit.emulate.root import require_emulation

        require_emulation()  # before any work: one line saying why this machine cannot
        extra["verify_on"] = request.verify_on
    options = BuildOptions(precision=precision, input_shapes=shapes, calibration=request.calibration,
                           io=request.io, extra=extra)

    with reporter.stage("import"):
        model = load_model(model_path, shapes, frozen=frozen)
        inputs, outputs = graph_inputs(model), graph_outputs(model)
        frozen_arrays = {n: model.graph.initializers[n].const_value.numpy() for n in frozen}
        frozen_spec = runner_spec(frozen_arrays)
        if frozen_arrays:
            options.extra["frozen_inputs"] = frozen_spec
            reporter.log("frozen: " + ", ".join(f"{n}={a.reshape(-1).tolist()}" for n, a in frozen_arrays.items()))
        source_sha = sha256_file(model_path)
        custom = backend.custom_ops(model)
        if custom:
            raise unsupported_error(custom, profile.name)
        check_loadable(model_path)  # the fp32 reference runs in ONNX Runtime: refuse what it cannot load now
        bad_weights = nonfinite_weights(model)
        if bad_weights:
            reporter.warn(f"{len(bad_weights)} weight tensor(s) hold NaN/Inf: {', '.join(bad_weights[:5])}"
                          f"{' ...' if len(bad_weights) > 5 else ''}; outputs that depend on them are not finite "
                          "(verification will fail): fix the model's export")
    eval_set = None
    if task is not None:
        from deploykit.quant.task_metrics import load_eval_data

        eval_set = load_eval_data(request.eval_data, inputs)
        if quant_config is not None:
            quant_config.eval_set = eval_set
    with reporter.stage("canonicalize"):
        model = passes.canonicalize(model)
        if compress_spec is None:
            model = backend.prepare(model, options)
    calibration = verify_set = compression = source_proto = None
    if compress_spec is not None:
        # compression needs the samples first: it scans on the calibration part, never the held-out one
        if request.calibration:
            with reporter.stage("calibration data"):
                samples = load_samples(request.calibration, inputs, limit=request.calibration_samples, images=request.images)
                calibration, verify_set = _split_samples(samples)
                reporter.log(f"{len(calibration)} calibration / {len(verify_set)} held-out verification samples")
        with reporter.stage(f"compress ({compress_spec})"), ort_run_failures("the model for compression"):
            model, compression, source_proto = _compress(model, compress_spec, calibration, reporter)
            model = backend.prepare(model, options)
    with reporter.stage("support analysis"):
        support = backend.analyze(model)
        if any(s.status is Support.UNSUPPORTED for s in support):
            raise unsupported_error(support, profile.name)
        check_pinned_model_loads(model)
    if request.calibration and calibration is None:
        with reporter.stage("calibration data"):
            samples = load_samples(request.calibration, inputs, limit=request.calibration_samples, images=request.images)
            calibration, verify_set = _split_samples(samples)
            reporter.log(f"{len(calibration)} calibration / {len(verify_set)} held-out verification samples")
    quant = None
    if quant_config is not None:
        from deploykit.ir.opset import upgrade_opset
        from deploykit.quant.engine import quantize_model

        model = upgrade_opset(model, 13)  # per-channel QuantizeLinear/DequantizeLinear
        with reporter.stage("calibrate + quantize"), ort_run_failures("the model on the calibration samples"):
            quant = quantize_model(model, calibration, backend.quant_scheme, quant_config, log=log_or_warn(reporter))
            model = quant.model
    if verify_set is None:
        verify_set = random_samples(inputs, VERIFY_SAMPLES, seed=0)
    # the fp32 reference runs before any backend sees the model: a model ONNX Runtime cannot run
    # (an attribute out of range, a Reshape that does not fit) fails here in one line, not inside a lowering
    with reporter.stage("reference (fp32 onnxruntime)"):
        feeds = list(verify_set.feeds())
        if compression is None:
            refs = run_reference(model_path, _with_frozen(feeds, frozen_arrays), [o.name for o in outputs])
        else:  # the bundle reproduces the compressed model; its loss vs the source is in report.compression
            refs = _reference_of(compression.model, feeds, [o.name for o in outputs])
        _warn_nonfinite_reference(refs, reporter)

    with StagedOutput(out_dir, request.force, protect) as stage:
        work = stage.path
        ctx = BuildContext(model=model, profile=profile, options=options, workdir=work, inputs=inputs,
                           outputs=outputs, calibration=calibration, quant=quant, log=reporter.log)
        with reporter.stage(f"lower ({backend.name}, {precision})"):
            artifact = backend.lower(ctx)
        with reporter.stage("samples"):
            stored = list(range(min(STORED_SAMPLES, len(feeds))))
            (work / "samples").mkdir()
            write_npz(work / SAMPLES_INPUTS, {f"in_{i}": verify_set.subset(stored).arrays[s.name] for i, s in enumerate(inputs)})
            write_npz(work / SAMPLES_EXPECTED, {f"out_{i}": _stack([refs[j][o.name] for j in stored]) for i, o in enumerate(outputs)})
        with reporter.stage("render runner"):
            context = _template_context(profile, backend, precision, artifact, frozen_spec, quant)
            (work / "runner.py").write_text(render(backend.runner_template, context, backend.template_package or ""), encoding="utf-8")
            reqs = artifact.requirements or backend.runner_requirements(precision)
            (work / "requirements.txt").write_text("".join(r + "\n" for r in reqs), encoding="utf-8")
        with reporter.stage("verify"):
            reason = backend.verification_unavailable()
            if reason:
                verification = {"status": "skipped", "reason": reason}
                reporter.warn(f"verification skipped: {reason}")
            else:
                try:
                    outs, runtime = run_bundle(work, feeds)  # the runner's default: min(profile threads, cores)
                    verification = verify_outputs(refs, outs, precision, runtime, parts=_output_parts(model))
                    if eval_set is not None:
                        names = [o.name for o in outputs]
                        _verify_task(verification, task, eval_set, work, precision, profile.threads,
                                     (lambda fs: run_reference(model_path, _with_frozen(fs, frozen_arrays), names))
                                     if compression is None
                                     else (lambda fs: _reference_of(compression.model, fs, names)))
                except (RuntimeError, ValueError) as e:  # the runtime refused these inputs
                    verification = _runtime_refused(e, len(feeds), not request.calibration)
                if request.verify_on == "emulated" and verification["status"] != "skipped":
                    _verify_emulated(verification, work, profile, precision, inputs, outputs, feeds, refs,
                                     _output_parts(model), reporter)
                if verification["status"] != "passed":
                    reporter.warn("verification FAILED: " + "; ".join(verification["problems"]))
        report = {
            "deploykit_version": __version__,
            "target": profile.name,
            "backend": backend.name,
            "precision": precision,
            "model": {"file": model_path.name, "sha256": source_sha,
                      "nodes": len(list(model.graph)), "opset": model.opset_imports.get("", 0), **_model_size(model)},
            "support": _support_summary(support),
            "verification": verification,
            "task_metric": verification.get("task"),
            "quantization": quant.report if quant is not None else None,
            "notes": list(ctx.notes),
            "backend_report": artifact.report,
        }
        if compression is not None:
            report["compression"] = compression.to_json()
        write_json(work / "report.json", report)
        for name, template in (("README.md", "README.md.j2"), ("Dockerfile", "Dockerfile.j2")):
            text = render(template, {**context, "verification": verification, "requirements": reqs,
                                     "device_env": _device_image_env(profile, reqs)}, backend.template_package or "")
            (work / name).write_text(text, encoding="utf-8")
        def metadata() -> dict[str, Any]:
            return write_bundle_metadata(
                work, profile=profile, backend=backend, precision=precision, artifact=artifact,
                source_name=model_path.name, source_sha256=source_sha, options=options,
                verification=verification, plugins=registry.plugins,
                quantization=_quant_summary(quant),
            )

        manifest = metadata()
        if compression is not None:
            # the effect report reads the staged bundle (manifest included), then the manifest is
            # written again so that report.html and the updated report.json are hashed too
            with reporter.stage("effect report"):
                _effect_report(work, source_proto, compression, profile.name, precision, model_path.name, feeds, reporter,
                               bundle_runs=verification.get("status") != "skipped")
            manifest = metadata()
    return BuildResult(out_dir=out_dir.absolute(), manifest=manifest, report=report)


def _warn_nonfinite_reference(refs: list[dict[str, Any]], reporter: Reporter) -> None:
    """Say so when the fp32 reference itself is NaN/Inf: verification cannot pass against it."""
    import numpy as np

    for name in refs[0] if refs else {}:
        values = [np.asarray(r[name]) for r in refs]
        bad = sum(int(np.count_nonzero(~np.isfinite(v))) for v in values if v.dtype.kind == "f")
        if bad:
            total = sum(v.size for v in values)
            reporter.warn(f"the fp32 reference itself is non-finite: output {name!r} has {bad} NaN/Inf of {total} values "
                          "on the verification samples (NaN/Inf weights, or inputs too large for float32)")


def _task_budget(request: BuildRequest):
    """The task budget of ``--eval-data`` / ``--metric`` (both or neither), else None."""
    if not request.eval_data and not request.metric:
        return None
    from deploykit.quant.task_metrics import METRICS, TaskBudget, parse_metric

    if not request.eval_data:
        raise DeployError(f"--metric {request.metric} needs --eval-data FILE.npz (inputs and labels; see "
                          "docs/eval-data.md)")
    if not request.metric:
        raise DeployError(f"--eval-data needs --metric: one of {', '.join(METRICS)}")
    metric = parse_metric(request.metric)
    return TaskBudget.parse(metric, request.accuracy_budget)


def _device_image_env(profile, reqs):
    """The device environment the Dockerfile installs: the same as the emulated root's (deploykit/devenv.py),
    for targets emulated with the bundle's own requirements (not stand-ins)."""
    from deploykit.devenv import device_env

    env = device_env(profile, tuple(reqs))
    return env if env is not None and not env.note else None


def _verify_emulated(verification: dict[str, Any], work: Path, profile, precision: str, inputs, outputs, feeds, refs,
                     parts, reporter: Reporter) -> None:
    """``--verify-on emulated``: the staged bundle on the emulated device, with its runtime and the
    runner's fallback runtime; stored as ``verification.emulated``; a failure fails the build's verification."""
    from deploykit.emulate.verify import ROLES, verify_emulated

    manifest = {"target": profile.name, "precision": precision, "inputs": [{"name": s.name} for s in inputs],
                "outputs": [{"name": s.name} for s in outputs]}
    with reporter.stage(f"verify (emulated {profile.emulation['cpu']})"):
        emulated = verify_emulated(work, manifest, feeds, refs, parts, roles=ROLES, log=reporter.log)
    verification["emulated"] = emulated
    if emulated["status"] != "passed":
        verification["status"] = "failed"
        verification["problems"] = list(verification.get("problems", [])) + [
            f"on the emulated {emulated['cpu']}: {p}" for p in emulated["runs"]["bundle"]["problems"]]


def _verify_task(verification: dict[str, Any], task, eval_set, bundle: Path, precision: str, threads,
                 reference) -> None:
    """The task metric of the bundle itself (its runner) against fp32 on the evaluation data; a
    missed budget fails verification."""
    from deploykit.quant.task_metrics import summary

    refs = reference(eval_set.feeds)
    outs, _ = run_bundle(bundle, eval_set.feeds, threads=threads)
    fp32 = task.metric(refs, eval_set.labels, refs)
    value = task.metric(outs, eval_set.labels, refs)
    verification["task"] = summary(task, fp32, value, len(eval_set), precision)
    if not verification["task"]["met"]:
        verification["status"] = "failed"
        verification["problems"].append(
            f"task metric {task.metric.name}: {task.metric.format(value)} vs fp32 {task.metric.format(fp32)} "
            f"on {len(eval_set)} evaluation samples; budget {task}")


def _output_parts(model) -> dict[str, Any]:
    """Outputs that concatenate branches (e.g. a detector's boxes and class scores): verified per branch."""
    from deploykit.quant.parts import find_concat_tails

    return find_concat_tails(model)


def _runtime_refused(error: Exception, samples: int, random_inputs: bool) -> dict[str, Any]:
    """Verification result when the bundle's runtime raised on the verification samples (e.g.
    TFLite's GATHER on random "ids" out of range: ONNX Runtime wraps negative indices, TFLite
    refuses them)."""
    line = " ".join(str(error).split())[:300]
    hint = (" (verification ran on random inputs; pass --calibration with real inputs to verify on them)"
            if random_inputs else "")
    return {"status": "failed", "runtime": "the bundle's runner", "samples": samples, "outputs": {},
            "problems": [f"the runtime raised on the verification samples: {type(error).__name__}: {line}{hint}"]}


def _compress(model, spec, calibration: SampleSet | None, reporter: Reporter):
    """(compressed onnx_ir model, CompressionResult, source proto) of the canonicalized ``model``."""
    import onnx_ir as ir

    from deploykit.compress import compress
    from deploykit.ir import to_proto

    source = to_proto(model)
    feeds = None
    if calibration is not None:
        n = len(calibration)
        import numpy as np

        picks = sorted({int(i) for i in np.linspace(0, n - 1, min(n, COMPRESS_SCAN_SAMPLES)).round()})
        feeds = list(calibration.feeds(picks))  # spread over the calibration set
    result = compress(source, spec, samples=feeds, budget=0.99, log=log_or_warn(reporter))
    d = result.details
    reporter.log(f"compression: params {d['params_before']:,} -> {d['params_after']:,}, MACs {d['macs_before']:,} -> "
                 f"{d['macs_after']:,}, cosine vs fp32 {d['cosine_vs_fp32']} (budget {result.budget})")
    return ir.from_proto(result.model), result, source


def _reference_of(proto, feeds, output_names: list[str]) -> list[dict[str, Any]]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="deploykit-ref-") as tmp:
        path = Path(tmp) / "compressed.onnx"
        path.write_bytes(proto.SerializeToString(deterministic=True))
        return run_reference(path, feeds, output_names)


def _effect_report(work: Path, source, compression, target: str, precision: str, model_name: str, feeds,
                   reporter: Reporter, bundle_runs: bool = True) -> None:
    """report.html + ``effect`` rows: fp32 source, each compression step, and the built bundle when
    its runtime exists on this machine. A failure here is a warning: the bundle is already verified."""
    try:
        from deploykit.effect import Variant, measure_variants, write_report
    except ImportError as e:  # the effect report is optional; the build stands without it
        reporter.warn(f"effect report skipped: {e}")
        return
    variants = [Variant("fp32", model=source), *[Variant(s.name, model=s.model) for s in compression.steps]]
    if bundle_runs:
        variants.append(Variant(f"{target} {precision}", bundle_dir=work))
    else:
        reporter.warn(f"effect report: the {target} bundle cannot run on this machine; it shows the ONNX steps only")
    try:
        rows = measure_variants(variants, inputs=feeds)
        write_report(work, rows, title=f"{model_name} on {target} ({precision}, --compress {compression.spec})")
    except DeployError as e:
        reporter.warn(f"effect report skipped: {e}")


def log_or_warn(reporter: Reporter):
    """A ``log(message)`` callback for engines: messages starting ``warning: `` become reporter warnings."""

    def log(message: str) -> None:
        if message.startswith("warning: "):
            reporter.warn(message[len("warning: "):])
        else:
            reporter.log(message)

    return log


def _quant_summary(quant) -> dict[str, Any] | None:
    if quant is None:
        return None
    r = quant.report
    return {"engine": r["engine"], "range_method": r["range_method"], "budget": r["budget"],
            "budget_met": r["budget_met"], "fallback_layers": r["fallback_layers"],
            "bias_correction": r["bias_correction"], "cross_layer_equalization": r["cross_layer_equalization"],
            "calibration_samples": r["calibration_samples"], "weight_bits": r.get("weight_bits", 8)}


def _model_size(model) -> dict[str, int]:
    """Parameters and MACs of the model lowered (``deploykit compare`` shows them for artifacts it cannot parse)."""
    from deploykit.ir.stats import model_stats

    try:
        st = model_stats(model)
    except Exception:  # noqa: BLE001 - figures for the report only; a build never fails on them
        return {}
    return {"params": int(st.params), "macs": int(st.macs)}


def _stack(arrays):
    import numpy as np

    return np.stack([np.asarray(a) for a in arrays])


def _support_summary(support: list[NodeSupport]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for s in support:
        counts[s.status.value] = counts.get(s.status.value, 0) + 1
    return {"counts": counts, "rewrites": [s.to_json() for s in support if s.status is Support.REWRITE]}


def _with_frozen(feeds, frozen_arrays):
    """Feeds for the *source* model: the bundle's feeds plus the frozen inputs' values."""
    return [{**f, **frozen_arrays} for f in feeds] if frozen_arrays else feeds


def _template_context(profile, backend: Backend, precision: str, artifact, frozen_spec=None, quant=None) -> dict[str, Any]:
    spec = {
        "target": profile.name,
        "backend": backend.name,
        "precision": precision,
        "threads": profile.threads,
        "inputs": [s.to_json() for s in artifact.inputs],
        "outputs": [s.to_json() for s in artifact.outputs],
    }
    if frozen_spec:
        spec["frozen_inputs"] = frozen_spec
    if precision == "int8" and backend.quant_scheme is not None:
        # the grid the engine kept (a scheme may allow a wider one where the device sums in int32)
        spec["int8_weight_bits"] = quant.report.get("weight_bits", 8) if quant is not None \
            else backend.quant_scheme.weight_bits
    spec.update(artifact.runner_context)
    return {
        "spec": spec,
        "profile": profile,
        "backend": backend,
        "precision": precision,
        "deploykit_version": __version__,
        "artifact": artifact,
    }
