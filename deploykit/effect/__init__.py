"""Optimization-effect report: measure model variants (ONNX models or built bundles) side by side.

For each step of an optimization (fp32 -> compressed -> quantized bundle) :func:`measure_variants`
records size (raw, zlib level 9, Huffman-coded weights), parameters, MACs, measured latency on
this host, agreement with a reference variant and, with labels, accuracy. :func:`write_report`
writes them as ``report.html`` (self-contained, inline SVG charts) and merges them into
``report.json`` under the key ``"effect"``.

    from deploykit.effect import Variant, measure_variants, write_report
    rows = measure_variants([Variant("fp32", model=proto), Variant("int8", bundle_dir=out)], feeds)
    write_report(out, rows, title="model.onnx on host")
"""

from __future__ import annotations

from deploykit.effect.measure import Variant, measure_variants
from deploykit.effect.report import write_report

__all__ = ["Variant", "measure_variants", "write_report"]
