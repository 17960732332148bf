"""Op-coverage corpus for the tflite backend: ``python benchmarks/tflite/node_corpus.py``.

Every onnx backend node test (the corpus of ``tests/roundtrip/corpus.py``) plus the onnx wheel's
``pytorch-converted`` and ``pytorch-operator`` models whose ops are all in the op table and whose
inputs are float: built in-process for ``rpi4`` fp32 (import, canonicalize, lower, LiteRT
verification against onnxruntime on random inputs). Cases onnxruntime itself cannot run are
listed but not counted. Writes ``benchmarks/results/tflite_node_corpus.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from collections import Counter
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests" / "plugin" / "tflite"))


def _roots() -> list[Path]:
    spec = importlib.util.spec_from_file_location("roundtrip_corpus_lib", ROOT / "tests" / "roundtrip" / "corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    data = Path(onnx.__file__).parent / "backend" / "test" / "data"
    return [module.corpus_dir(), data / "pytorch-converted", data / "pytorch-operator"]


def cases(only: str = ""):
    from deploykit_tflite.optable import CONVERTERS

    for root in _roots():
        for d in sorted(root.iterdir()):
            m = d / "model.onnx"
            if not m.exists() or only not in d.name:
                continue
            proto = onnx.load(str(m), load_external_data=False)
            ops = {n.op_type for n in proto.graph.node}
            if not ops or not ops <= set(CONVERTERS):
                continue
            if any(i.type.tensor_type.elem_type != onnx.TensorProto.FLOAT for i in proto.graph.input):
                continue
            yield d.name, m


def run(name: str, path: Path, work: Path) -> tuple[str, str, str]:
    from tflite_testlib import build

    try:
        v = build(path, work / "out").manifest["verification"]
        return name, v["status"], "; ".join(v.get("problems", []))[:160]
    except Exception as e:  # noqa: BLE001 - every failure is a row
        msg = (str(e).splitlines() or [""])[0][:160]
        status = "not counted" if "ONNXRuntimeError" in msg else "error"
        return name, status, f"{type(e).__name__}: {msg}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="run only cases whose name contains this")
    ap.add_argument("--out", type=Path, default=RESULTS / "tflite_node_corpus.md")
    args = ap.parse_args(argv)
    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    work = Path(tempfile.mkdtemp(prefix="dk_node_corpus_"))
    rows = [run(name, path, work) for name, path in cases(args.only)]
    counted = [r for r in rows if r[1] != "not counted"]
    passed = [r for r in counted if r[1] == "passed"]
    reasons = Counter(r[2].split(" (see")[0] for r in counted if r[1] != "passed")
    lines = ["# tflite op-coverage corpus (`python benchmarks/tflite/node_corpus.py`)", "",
             "onnx backend node tests + the onnx wheel's pytorch-converted/pytorch-operator models whose ops are all "
             "in the tflite op table and whose inputs are float; built for rpi4 fp32 and verified in LiteRT against "
             "onnxruntime (random inputs, max abs error <= 1e-4 of the range).", "",
             f"**{len(passed)} / {len(counted)} passed** ({len(rows) - len(counted)} cases onnxruntime cannot run "
             "are not counted).", "", "| cases | why not passed |", "|---|---|"]
    lines += [f"| {n} | {reason.replace('|', '/')} |" for reason, n in reasons.most_common()]
    lines += ["", "| case | status | detail |", "|---|---|---|"]
    lines += [f"| {n} | {s} | {d.replace('|', '/')} |" for n, s, d in rows if s != "passed"]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"{len(passed)} / {len(counted)} passed; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
