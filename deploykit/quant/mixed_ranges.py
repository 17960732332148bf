"""Concats whose branches have ranges orders of magnitude apart.

int8 gives a Concat one scale for all its inputs (the output is one tensor). When one branch spans
[0, 640] (box coordinates in pixels) and another [0, 1] (class probabilities), the shared scale is
2.5 and every probability rounds to zero: a YOLOv8 detector finds nothing, while metrics over the
whole output still look fine. Such a Concat must not be quantized as one tensor:

* targets with float fallback (ONNX Runtime, TensorRT, OpenVINO, TFLite): the Concat (and the
  layout-only ops after it, when it feeds a graph output) runs in float on the dequantized
  branches, each of which keeps its own int8 scale;
* targets without float ops (Edge TPU) whose runner can join outputs: a Concat at the output
  tail is left to the runner, which concatenates the separately quantized branches in float;
* otherwise the Concat stays int8 and the build says which branch loses precision.
"""

from __future__ import annotations

from dataclasses import dataclass

from deploykit.quant.collect import GraphIndex
from deploykit.quant.observers import TensorObserver
from deploykit.quant.parts import ConcatTail
from deploykit.quant.plan import _node_key

# Branch range widths further apart than this share one int8 scale badly: the narrowest branch
# would keep fewer than 256 / 16 = 16 levels (about 24 dB at best).
MIXED_RANGE_RATIO = 16.0


@dataclass(frozen=True)
class MixedConcat:
    """:ivar key: node key of the Concat. :ivar widths: observed range width of each branch.
    :ivar tail: the :class:`ConcatTail` when the Concat makes a graph output, else ``None``."""

    key: str
    output: str
    widths: tuple[float, ...]
    tail: ConcatTail | None = None

    @property
    def ratio(self) -> float:
        nonzero = [w for w in self.widths if w > 0]
        return max(nonzero) / min(nonzero) if len(nonzero) > 1 else 1.0

    def describe(self) -> str:
        where = f"output {self.tail.output!r}" if self.tail is not None else f"tensor {self.output!r}"
        return (f"Concat {self.key!r} ({where}) joins branches whose ranges differ {self.ratio:.0f}x "
                f"(widths {', '.join(f'{w:.3g}' for w in self.widths)})")


def mixed_range_concats(index: GraphIndex, observers: dict[str, TensorObserver],
                        tails: dict[str, ConcatTail], ratio: float = MIXED_RANGE_RATIO) -> list[MixedConcat]:
    """Every Concat whose observed branch range widths differ by more than ``ratio``."""
    by_key = {t.nodes[0]: t for t in tails.values() if t.nodes}
    found = []
    for k, node in enumerate(index.model.graph.node):
        if node.op_type != "Concat" or not node.output:
            continue
        widths = []
        for name in node.input:
            obs = observers.get(name)
            if obs is None or obs.count == 0 or name in index.initializers:
                widths = []
                break
            widths.append(max(float(obs.hi) - float(obs.lo), 0.0))
        if len(widths) < 2:
            continue
        key = _node_key(node, k)
        m = MixedConcat(key, node.output[0], tuple(widths), by_key.get(key))
        if m.ratio > ratio:
            found.append(m)
    return found
