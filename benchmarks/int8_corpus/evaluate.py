"""Child process: run one artifact on evaluation sets and save each set's task summary.

    python -m benchmarks.int8_corpus.evaluate --case NAME --kind KIND --path P \
        --set INPUTS.npz=SUMMARY.npz [...]

``KIND``:

* ``fp32`` -- the source model in ONNX Runtime (the reference);
* ``bundle`` -- a deploykit bundle through its generated runner
  (``deploykit.verification.load_runner_module(bundle).Runner(bundle, num_threads=1)``), as users run it;
* ``ort`` / ``ort-exact`` -- an ORT ``quantize_static`` model in ONNX Runtime, with its default
  int8 kernels / with QDQ fusion off (``session.disable_quant_qdq``: int8 arithmetic simulated
  exactly, as on a CPU whose int8 dot products do not saturate);
* ``tflite`` -- an onnx2tf model in LiteRT (``ai_edge_litert``), its NHWC/permuted inputs and
  outputs mapped back to the ONNX names and layouts.

Everything runs on one thread. Prints one JSON line: runtime description and seconds per set.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.int8_corpus import cases  # noqa: E402


def _ort_session(path: Path, exact: bool = False):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if exact:
        so.add_session_config_entry("session.disable_quant_qdq", "1")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class TFLiteRunner:
    """An onnx2tf ``.tflite`` behind the ONNX model's names and layouts."""

    def __init__(self, path: Path, ref_inputs: dict, ref_outputs: dict):
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_path=str(path), num_threads=1)
        self.it.allocate_tensors()
        self.runtime = "ai_edge_litert (onnx2tf model)"
        self.inputs = self._map(self.it.get_input_details(), ref_inputs, onnx_to_tf=True)
        self.outputs = self._map(self.it.get_output_details(), ref_outputs, onnx_to_tf=False)

    @staticmethod
    def _perms(rank: int, onnx_to_tf: bool) -> list[tuple]:
        """Permutations to try: none, onnx2tf's channels-last one, then every other."""
        last = tuple([0, *range(2, rank), 1]) if rank >= 3 else None
        if last and not onnx_to_tf:
            last = tuple(int(i) for i in np.argsort(last))
        first = [tuple(range(rank))] + ([last] if last else [])
        return first + [p for p in itertools.permutations(range(rank)) if p not in first]

    @classmethod
    def _map(cls, details: list, ref: dict, onnx_to_tf: bool) -> dict:
        """ONNX name -> (tflite index, axes for np.transpose into the other layout, dtype)."""
        free = list(details)
        out = {}
        for name, arr in ref.items():
            shape = tuple(np.shape(arr))
            named = [d for d in free if d["name"].split(":")[0] in (name, name.replace(".", "_"))]
            for d in named or free:
                tshape = tuple(int(s) for s in d["shape"])
                src = shape if onnx_to_tf else tshape
                dst = tshape if onnx_to_tf else shape
                perm = next((p for p in cls._perms(len(src), onnx_to_tf) if tuple(src[i] for i in p) == dst), None)
                if perm is not None:
                    out[name] = (d["index"], perm, d["dtype"])
                    free.remove(d)
                    break
            if name not in out:
                raise RuntimeError(f"onnx2tf model: no tensor for {name} {list(shape)} among "
                                   f"{[(d['name'], list(d['shape'])) for d in free]}")
        return out

    def run(self, feed: dict) -> dict:
        for name, (idx, perm, dtype) in self.inputs.items():
            self.it.set_tensor(idx, np.ascontiguousarray(np.transpose(feed[name], perm)).astype(dtype))
        self.it.invoke()
        return {name: np.transpose(self.it.get_tensor(idx), perm) for name, (idx, perm, _) in self.outputs.items()}


def make_runner(case: cases.Case, kind: str, path: Path, first_feed: dict):
    """(run(feed) -> {output name: array}, output names, runtime description)."""
    ref = _ort_session(case.model_path())
    names = [o.name for o in ref.get_outputs()]
    if kind in ("fp32", "ort", "ort-exact"):
        sess = ref if kind == "fp32" else _ort_session(path, exact=kind == "ort-exact")
        onames = [o.name for o in sess.get_outputs()]
        return (lambda feed: dict(zip(onames, sess.run(None, feed)))), names, f"onnxruntime ({kind})"
    if kind == "bundle":
        from deploykit.verification import load_runner_module

        runner = load_runner_module(path).Runner(str(path), num_threads=1)
        return runner.run, names, str(getattr(runner, "runtime", "bundle runner"))
    if kind == "tflite":
        ref_out = dict(zip(names, ref.run(None, first_feed)))
        r = TFLiteRunner(path, first_feed, ref_out)
        return r.run, names, r.runtime
    raise ValueError(kind)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", required=True)
    ap.add_argument("--kind", required=True, choices=["fp32", "bundle", "ort", "ort-exact", "tflite"])
    ap.add_argument("--path", required=True, type=Path)
    ap.add_argument("--set", action="append", required=True, help="INPUTS.npz=SUMMARY.npz")
    args = ap.parse_args(argv)
    case = cases.by_name(args.case)
    task = case.task(case.model_path())
    run = names = runtime = None
    times = {}
    for spec in args.set:
        src, dst = spec.split("=", 1)
        inputs = dict(np.load(src))
        n = len(next(iter(inputs.values())))
        feeds = ({k: np.ascontiguousarray(v[i]).reshape(case.shapes[k]) for k, v in inputs.items()} for i in range(n))
        first = {k: np.ascontiguousarray(v[0]).reshape(case.shapes[k]) for k, v in inputs.items()}
        if run is None:
            run, names, runtime = make_runner(case, args.kind, args.path, first)
        t0 = time.perf_counter()
        outs = [run(feed) for feed in feeds]
        summary = task.summarize(outs, names)
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(dst).with_suffix(".part.npz")
        np.savez(tmp, **summary)
        tmp.replace(dst)
        times[Path(src).stem] = round(time.perf_counter() - t0, 1)
    print(json.dumps({"runtime": runtime, "seconds": times}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
