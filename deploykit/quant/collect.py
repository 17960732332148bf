"""Statistics collection: run the fp32 graph in ONNX Runtime with every float intermediate tensor
exposed as an output, feeding each sample once, into bounded-memory observers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from deploykit.quant.calibration import SampleSet
from deploykit.quant.observers import RESERVOIR, TensorObserver
from deploykit.quant.roles import FLOAT_TYPES, WEIGHT_OPS


BUFFER_BYTES = 64 << 20
RESERVOIR_BUDGET_BYTES = 96 << 20


@dataclass
class GraphIndex:
    """Name-level view of an ONNX graph: producers, consumers, initializers, float tensors."""

    model: onnx.ModelProto

    def __post_init__(self) -> None:
        g = self.model.graph
        self.initializers = {t.name: t for t in g.initializer}
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
        for node in g.node:
            for o in node.output:
                if o:
                    self.producer[o] = node
            for i, name in enumerate(node.input):
                if name:
                    self.consumers.setdefault(name, []).append((node, i))
        self.graph_inputs = [i.name for i in g.input if i.name not in self.initializers]
        self.graph_outputs = [o.name for o in g.output]
        self.elem_type: dict[str, int] = {}
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            if vi.type.HasField("tensor_type"):
                self.elem_type[vi.name] = vi.type.tensor_type.elem_type
        for t in g.initializer:
            self.elem_type[t.name] = t.data_type

    def const(self, name: str) -> np.ndarray | None:
        """The value of an initializer or a Constant node's output, else ``None``."""
        return constant_value(name, self.initializers, self.producer, self.graph_inputs)

    def is_float(self, name: str) -> bool:
        return self.elem_type.get(name) in FLOAT_TYPES

    def activations(self) -> list[str]:
        """Float, non-constant tensors: graph inputs and node outputs with a known float type."""
        names = [n for n in self.graph_inputs if self.is_float(n)]
        for node in self.model.graph.node:
            names += [o for o in node.output if o and self.is_float(o) and o not in self.initializers]
        return list(dict.fromkeys(names))


def constant_value(name: str, initializers, producer, graph_inputs=()) -> np.ndarray | None:
    """The value of tensor ``name`` of an ONNX graph when it is constant: an initializer that is not
    a graph input, or the output of a ``Constant`` node with a ``value`` tensor; else ``None``."""
    if name in initializers and name not in graph_inputs:
        return numpy_helper.to_array(initializers[name])
    node = producer.get(name)
    if node is not None and node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
        for a in node.attribute:
            if a.name == "value":
                return numpy_helper.to_array(a.t)
    return None


def _channel_axis_for(index: GraphIndex, name: str) -> int | None:
    """Channel axis of an activation feeding a weighted op (for bias correction), else None."""
    for node, i in index.consumers.get(name, []):
        if i == 0 and node.op_type in WEIGHT_OPS and len(node.input) > 1 and node.input[1] in index.initializers:
            return 1 if node.op_type in ("Conv", "ConvTranspose") else -1
    return None


def collect_statistics(
    model: onnx.ModelProto,
    samples: SampleSet,
    *,
    eval_count: int = 16,
    progress: Callable[[int, int], None] | None = None,
    threads: int | None = None,
    wanted: Iterable[str] | None = None,
    extra_refs: Iterable[str] = (),
) -> tuple[dict[str, TensorObserver], list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """Observe every float activation (or only those in ``wanted``) over all samples.

    Schemes that quantize only some ops need statistics of only the tensors those ops read;
    observing just these makes the calibration run faster and lighter.

    Returns ``(observers, eval_feeds, eval_reference_outputs)``; the eval part is ``eval_count``
    samples spread over the set with the fp32 model's outputs (plus the ``extra_refs`` tensors,
    e.g. the logits under a Softmax output), used to score quantized candidates. When the set has
    at least three times as many samples, the eval samples are held out of the statistics: a range
    method is then chosen on samples it was not fitted to. Each observer also records its range
    after half of the observed samples (``half_range``), to tell whether ranges still grow.
    """
    import onnxruntime as ort

    index = GraphIndex(model)
    acts = index.activations()
    if wanted is not None:
        keep = set(wanted)
        acts = [a for a in acts if a in keep]
    augmented = onnx.ModelProto()
    augmented.CopyFrom(model)
    existing = {o.name for o in augmented.graph.output}
    ref_names = list(dict.fromkeys([*index.graph_outputs, *extra_refs]))
    for name in dict.fromkeys([*acts, *ref_names]):
        if name not in existing:
            augmented.graph.output.add().name = name
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or min(os.cpu_count() or 1, 8)
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.log_severity_level = 3
    so.enable_cpu_mem_arena = False  # every intermediate is an output: an arena would keep them all
    sess = ort.InferenceSession(augmented.SerializeToString(), so, providers=["CPUExecutionProvider"])
    out_names = [o.name for o in sess.get_outputs()]
    want_inputs = {i.name for i in sess.get_inputs()}
    # Reservoirs share a fixed memory budget, so models with thousands of tensors stay bounded.
    reservoir = int(min(RESERVOIR, max(4096, RESERVOIR_BUDGET_BYTES // (4 * max(len(acts), 1)))))
    observers = {n: TensorObserver(n, seed=k, reservoir=reservoir, channel_axis=_channel_axis_for(index, n))
                 for k, n in enumerate(acts)}
    eval_feeds, eval_refs = [], []
    total = len(samples)
    picks = eval_indices(total, eval_count)
    held_out = picks if total >= 3 * len(picks) else set()
    half = (total - len(held_out)) // 2
    observed = 0
    # Several samples' tensors are observed at once (fewer, larger numpy calls), within a memory cap.
    buffers: dict[str, list[np.ndarray]] = {n: [] for n in observers}
    buffered = 0

    def flush() -> None:
        for name, chunks in buffers.items():
            if not chunks:
                continue
            obs = observers[name]
            if len(chunks) == 1:
                obs.observe(chunks[0])
            elif obs.channel_axis is None:
                obs.observe(np.concatenate([c.reshape(-1) for c in chunks]))
            elif len({c.shape[1:] for c in chunks}) == 1:
                obs.observe(np.concatenate(chunks))
            else:  # shapes differ between samples: observe one by one
                for c in chunks:
                    obs.observe(c)
            chunks.clear()

    for k, feed in enumerate(_iter(samples)):
        values = sess.run(out_names, {n: v for n, v in feed.items() if n in want_inputs})
        by_name = dict(zip(out_names, values))
        if k in picks:
            eval_feeds.append(feed)
            eval_refs.append({o: np.asarray(by_name[o]) for o in ref_names})
        if k in held_out:
            if progress:
                progress(k + 1, total)
            del values, by_name
            continue
        if observed == half and half > 0:
            flush()
            buffered = 0
            for obs in observers.values():
                obs.half_range = (obs.lo, obs.hi)
        observed += 1
        for name in observers:
            v = by_name.get(name)
            if v is None:
                v = feed.get(name)
            if v is not None and np.issubdtype(np.asarray(v).dtype, np.floating):
                buffers[name].append(np.asarray(v))
                buffered += np.asarray(v).nbytes
        if buffered > BUFFER_BYTES:
            flush()
            buffered = 0
        if progress:
            progress(k + 1, total)
        del values, by_name  # release this sample's tensors before the next run allocates its own
    flush()
    return observers, eval_feeds, eval_refs


def eval_indices(total: int, count: int) -> set[int]:
    """``count`` sample indices spread evenly over ``total`` (the first samples of a set are often
    alike: one recording, one document)."""
    if total <= 0 or count <= 0:
        return set()
    if count >= total:
        return set(range(total))
    return {int(i) for i in np.linspace(0, total - 1, count).round()}


def range_growth(observers: dict[str, TensorObserver]) -> list[tuple[str, float]]:
    """(tensor, relative growth of its range width in the second half of the samples), for
    tensors observed in both halves; large values mean the set has not yet seen what the model
    will see."""
    grown = []
    for name, obs in observers.items():
        half = getattr(obs, "half_range", None)
        if half is None or not np.isfinite(half[0]) or not np.isfinite(half[1]):
            continue
        before, after = half[1] - half[0], obs.hi - obs.lo
        if before > 0:
            grown.append((name, float(after / before - 1.0)))
    return grown


def _iter(samples: SampleSet) -> Iterable[dict[str, np.ndarray]]:
    return samples.feeds()
