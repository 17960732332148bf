"""Model compression before lowering: channel pruning, magnitude pruning, low-rank factorization,
weight clustering, and the Huffman-coded size of the result.

Public API (stable; ``deploykit.effect`` and the CLI code against exactly this)::

    spec = parse_spec("prune=0.3,lowrank=auto,cluster=64")   # or "auto", or a .toml/.json path
    result = compress(model_proto, spec, samples=[{"x": x}, ...], budget=0.99, log=print)
    result.model                 # the compressed onnx.ModelProto
    for step in result.steps:    # one per technique, in the order applied
        step.name, step.model, step.details

Every technique works on an ``onnx.ModelProto`` with constant weights, skips what it cannot change
safely (with a reason in ``details["skipped"]``) and is validated with ``onnx.checker`` and
ONNX Runtime; a step that fails validation is dropped, never the model broken.
"""

from __future__ import annotations

from deploykit.compress.apply import CompressionResult, CompressionStep, compress
from deploykit.compress.huffman import huffman_size
from deploykit.compress.spec import DEFAULT_SPEC, CompressionSpec, parse_spec

__all__ = ["DEFAULT_SPEC", "CompressionResult", "CompressionSpec", "CompressionStep", "compress", "huffman_size",
           "parse_spec"]
