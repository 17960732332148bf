#!/usr/bin/env python3
"""Accuracy of deploykit bundles on the labeled test set, through each bundle's Runner API.

    python evaluate.py out/test.npz out/quickstart-fp32 out/quickstart-int8 [--json]

Only numpy and each bundle's own runner.py are used -- exactly what runs on the device.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np


def load_runner(bundle: Path):
    """Import ``bundle/runner.py`` as its own module and make a Runner for that bundle.

    With one bundle, ``sys.path.insert(0, bundle); from runner import Runner`` is all you need;
    loading each runner.py under its own name lets one process compare several bundles.
    """
    name = "runner_" + "".join(ch if ch.isalnum() else "_" for ch in bundle.resolve().name)
    spec = importlib.util.spec_from_file_location(name, bundle / "runner.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"error: {bundle} has no runner.py; is it a deploykit bundle?")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Runner(str(bundle))


def evaluate(bundle: Path, x: np.ndarray, y: np.ndarray) -> dict:
    runner = load_runner(bundle)
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    (inp,), (out,) = runner.inputs, runner.outputs  # the quickstart model: one input, one output
    predictions = []
    for sample in x:  # one image per run: the model's batch is 1
        scores = runner.run({inp["name"]: sample[None]})[out["name"]]
        predictions.append(int(np.argmax(scores)))
    correct = int((np.asarray(predictions) == y).sum())
    return {"bundle": str(bundle), "target": manifest["target"], "precision": manifest["precision"],
            "runtime": runner.runtime, "samples": len(y), "correct": correct, "accuracy": correct / len(y)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("test_set", type=Path, help="test.npz from make_model.py (x, y, numpy_accuracy)")
    parser.add_argument("bundles", type=Path, nargs="+", help="bundle folders built by 'deploykit build'")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    data = np.load(args.test_set)
    x, y = data["x"].astype(np.float32), data["y"]
    reference = float(data["numpy_accuracy"])
    results = [evaluate(b, x, y) for b in args.bundles]
    if args.json:
        print(json.dumps({"numpy_accuracy": reference, "bundles": results}, indent=2))
        return 0
    print(f"{'model':<28} {'accuracy':>9}  {'vs numpy':>9}  runtime")
    print(f"{'numpy (training code)':<28} {reference:>9.2%}  {'':>9}")
    for r in results:
        label = f"{r['target']} {r['precision']}"
        print(f"{label:<28} {r['accuracy']:>9.2%}  {100 * (r['accuracy'] - reference):>+8.2f}pt  {r['runtime']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
