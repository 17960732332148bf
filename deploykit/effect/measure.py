"""Measure variants side by side: sizes, parameters, MACs, latency, agreement, accuracy.

A variant is an in-memory ONNX model (run with ONNX Runtime, CPU) or a bundle folder (run through
the bundle's own generated ``runner.py``). Every figure is measured on this machine; nothing is
estimated from a device model. Failures to *run* a variant (runtime missing here, a model the
runtime rejects) are recorded in the row's ``error`` and leave its latency/agreement empty, so
one broken step never hides the others.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from deploykit.bundle.files import round_floats
from deploykit.effect.host import host_info
from deploykit.effect.sizes import huffman_weights_size, onnx_weight_tensors, zip_size
from deploykit.errors import DeployError
from deploykit.quant.metrics import compare_outputs, json_safe

Feed = dict[str, np.ndarray]


@dataclass
class Variant:
    """One step to measure: an ONNX model, or a bundle folder.

    With both set, the bundle is measured and ``model`` (its source) supplies MACs when the
    bundle's artifact does not tell them.
    """

    name: str
    model: onnx.ModelProto | None = None
    bundle_dir: Path | None = None


# ---------------------------------------------------------------- static figures


def _onnx_stats(model: onnx.ModelProto) -> dict[str, int | None]:
    import onnx_ir as ir

    from deploykit.ir.stats import model_stats

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - stats without shapes: MACs unknown, params still counted
        inferred = model
    stats = model_stats(ir.from_proto(inferred))
    return {"params": stats.params, "macs": stats.macs or None}


def _precision_of(model: onnx.ModelProto) -> str:
    if any(n.op_type in ("DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger") for n in model.graph.node):
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    return "fp32"


def _model_figures(model: onnx.ModelProto) -> dict[str, Any]:
    data = model.SerializeToString(deterministic=True)
    huff, count = huffman_weights_size(onnx_weight_tensors(model))
    return {"kind": "onnx", "target": None, "precision": _precision_of(model), "size_raw": len(data),
            "size_zip": zip_size([data]), "size_huffman": huff, "weight_values": count, **_onnx_stats(model)}


def _recorded_macs(bundle: Path) -> int | None:
    try:
        report = json.loads((bundle / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for key in ("stats", "model"):
        value = (report.get(key) or {}).get("macs") if isinstance(report, dict) else None
        if isinstance(value, int) and value > 0:
            return value
    return None


def _bundle_figures(bundle: Path, source: onnx.ModelProto | None) -> dict[str, Any]:
    from deploykit.bundle.manifest import read_manifest

    manifest = read_manifest(bundle)
    names = [a for a in manifest.get("artifacts") or [] if (bundle / a).is_file()]
    if not names:
        raise DeployError(f"bundle {str(bundle)!r} lists no artifact file in its manifest.json; rebuild it with deploykit build")
    blobs = {a: (bundle / a).read_bytes() for a in names}
    tensors: list[tuple[np.ndarray, int | None]] = []
    params = macs = None
    parsed = False
    for name, data in blobs.items():
        if name.endswith(".onnx"):
            model = onnx.load_from_string(data)
            tensors += onnx_weight_tensors(model)
            st = _onnx_stats(model)
        elif name.endswith(".tflite"):
            from deploykit.effect.tflite_reader import read_tflite

            tfl = read_tflite(data)
            tensors += [(c, 0) for c in tfl.constants]
            st = {"params": tfl.params, "macs": tfl.macs or None}
        else:
            continue
        if parsed:  # several artifacts of one model (e.g. CPU + accelerator builds): keep the first's counts
            continue
        parsed, params, macs = True, st["params"], st["macs"]
    macs = _recorded_macs(bundle) or macs
    if source is not None:
        src = _onnx_stats(source)
        macs = macs or src["macs"]
        params = params if params is not None else src["params"]
    huff, count = huffman_weights_size(tensors) if tensors else (None, 0)
    return {"kind": "bundle", "target": manifest.get("target"), "precision": manifest.get("precision"),
            "size_raw": sum(len(b) for b in blobs.values()), "size_zip": zip_size(blobs.values()),
            "size_huffman": huff, "weight_values": count, "params": params, "macs": macs}


# ---------------------------------------------------------------- running


class _OnnxRun:
    def __init__(self, model: onnx.ModelProto, threads: int | None):
        import onnxruntime as ort

        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        self.inputs = [(i.name, i.shape) for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.runtime = f"onnxruntime {ort.__version__} (CPU, {threads or 'default'} thread{'' if threads == 1 else 's'})"

    def prepare(self, feed: Mapping[str, np.ndarray]) -> Feed:
        arrays = {}
        for name, shape in self.inputs:
            x = np.asarray(feed[name])
            static = [d for d in shape if isinstance(d, int)]
            if len(static) == len(shape) and list(x.shape) != list(shape) and x.size == int(np.prod(shape)):
                x = x.reshape(shape)  # samples stored without their batch dimension
            arrays[name] = x
        return arrays

    def run(self, arrays: Feed) -> Feed:
        return dict(zip(self.outputs, self.session.run(self.outputs, arrays)))


class _BundleRun:
    def __init__(self, bundle: Path, threads: int | None):
        from deploykit.verification import load_runner_module

        self.runner = load_runner_module(bundle).Runner(str(bundle), num_threads=threads)
        self.runtime = str(self.runner.runtime)

    def prepare(self, feed: Mapping[str, np.ndarray]) -> Feed:
        return dict(feed)

    def run(self, arrays: Feed) -> Feed:
        return self.runner.run(arrays)


def _latency(runner, feeds: list[Feed], runs: int) -> dict[str, float]:
    for i in range(max(2, runs // 10)):  # warm-up (the output pass before already warmed caches)
        runner.run(feeds[i % len(feeds)])
    times = []
    for i in range(runs):
        feed = feeds[i % len(feeds)]
        t0 = time.perf_counter()
        runner.run(feed)
        times.append((time.perf_counter() - t0) * 1e3)
    t = np.asarray(times)
    return {"latency_ms_p50": float(np.percentile(t, 50)), "latency_ms_p90": float(np.percentile(t, 90)),
            "latency_runs": runs}


def _top1(outputs: list[Feed], labels: Sequence[int]) -> float | None:
    first = [np.asarray(next(iter(o.values()))).reshape(-1) for o in outputs]
    if not first or first[0].size < 2 or not np.issubdtype(first[0].dtype, np.floating):
        return None
    return float(np.mean([int(np.argmax(y)) == int(lab) for y, lab in zip(first, labels)]))


def _agreement(refs: list[Feed], outs: list[Feed]) -> dict[str, float | None]:
    ref_names = list(refs[0])
    if list(outs[0]) != ref_names:  # compare by position when names differ
        outs = [dict(zip(ref_names, o.values())) for o in outs]
    metrics = compare_outputs(refs, outs)
    t1 = [m["top1_agreement"] for m in metrics.values() if "top1_agreement" in m]
    return {"cosine": min(m["cosine"] for m in metrics.values()),
            "max_abs_error": max(m["max_abs_error"] for m in metrics.values()),
            "sqnr_db": min(m["sqnr_db"] for m in metrics.values()),
            "top1_agreement": min(t1) if t1 else None}


def _check(variants: list[Variant], inputs: list[Feed], labels, reference: int, reference_outputs) -> None:
    if not variants:
        raise DeployError("measure_variants needs at least one variant")
    if not inputs:
        raise DeployError("measure_variants needs at least one input sample")
    for v in variants:
        if v.model is None and v.bundle_dir is None:
            raise DeployError(f"variant {v.name!r} has neither a model nor a bundle folder")
    if labels is not None and len(labels) != len(inputs):
        raise DeployError(f"{len(labels)} labels for {len(inputs)} input samples; pass one label per sample")
    if reference_outputs is None and not 0 <= reference < len(variants):
        raise DeployError(f"reference index {reference} is out of range for {len(variants)} variants")
    if reference_outputs is not None and len(reference_outputs) != len(inputs):
        raise DeployError(f"{len(reference_outputs)} reference outputs for {len(inputs)} input samples")


def measure_variants(
    variants: list[Variant],
    inputs: list[dict[str, np.ndarray]],
    labels: Sequence[int] | None = None,
    reference: int = 0,
    runs: int = 20,
    progress: Callable[[str], None] | None = None,
    *,
    threads: int | None = 1,
    reference_outputs: list[dict[str, np.ndarray]] | None = None,
) -> list[dict]:
    """One JSON-serialisable row per variant, in order.

    :param inputs: samples, each ``{input name: array}`` in the source model's names and layout
        (a missing batch dimension of 1 is added).
    :param labels: class index per sample; adds ``accuracy`` (arg-max of the first output).
    :param reference: index of the variant the others are compared with (agreement columns).
    :param runs: timed runs per variant (after a warm-up), cycling through ``inputs``.
    :param progress: called with a short message before each measurement.
    :param threads: CPU threads for every runtime (same for all variants: a fair comparison).
    :param reference_outputs: compare with these outputs (one dict per sample) instead of a variant.
    """
    _check(variants, inputs, labels, reference, reference_outputs)
    say = progress or (lambda _msg: None)
    host = host_info(threads)
    rows: list[dict[str, Any]] = []
    outputs: list[list[Feed] | None] = []
    for v in variants:
        say(f"{v.name}: sizes and statistics")
        bundle = Path(v.bundle_dir) if v.bundle_dir is not None else None
        row: dict[str, Any] = {"name": v.name, **(_bundle_figures(bundle, v.model) if bundle else _model_figures(v.model))}
        row.update({"runtime": None, "latency_ms_p50": None, "latency_ms_p90": None, "latency_runs": 0,
                    "accuracy": None, "samples": len(inputs), "host": host})
        outs = None
        try:
            say(f"{v.name}: running {len(inputs)} samples, then {runs} timed runs")
            runner = _BundleRun(bundle, threads) if bundle else _OnnxRun(v.model, threads)
            row["runtime"] = runner.runtime
            feeds = [runner.prepare(f) for f in inputs]
            outs = [{k: np.asarray(y) for k, y in runner.run(f).items()} for f in feeds]
            row.update(_latency(runner, feeds, runs) if runs > 0 else {})
            if labels is not None:
                row["accuracy"] = _top1(outs, labels)
        except Exception as e:  # noqa: BLE001 - recorded in the row; the other variants still get measured
            row["error"] = f"{type(e).__name__}: {' '.join(str(e).split())}"[:300]
            outs = None
        rows.append(row)
        outputs.append(outs)
    refs = reference_outputs if reference_outputs is not None else outputs[reference]
    ref_name = "reference outputs" if reference_outputs is not None else variants[reference].name
    for row, outs in zip(rows, outputs):
        row["reference"] = ref_name
        if refs is None or outs is None:
            row.update({"cosine": None, "max_abs_error": None, "sqnr_db": None, "top1_agreement": None})
        else:
            row.update(_agreement(list(refs), outs))
    return [json_safe(round_floats(r)) for r in rows]
