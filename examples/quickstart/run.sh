#!/usr/bin/env bash
# deploykit quickstart: train a tiny CNN, build fp32 and int8 bundles for the host, run and evaluate them.
# Usage: bash examples/quickstart/run.sh      (from anywhere; everything goes to examples/quickstart/out/)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
PYTHON="${PYTHON:-python3}"
DEPLOYKIT="${DEPLOYKIT:-deploykit}"   # or: DEPLOYKIT="python -m deploykit.cli.app"

echo "== 1. train the model (numpy) and export out/model.onnx, out/calib.npy, out/test.npz"
"$PYTHON" make_model.py --out out

echo "== 2. build an fp32 bundle for the host"
$DEPLOYKIT build out/model.onnx --target host -o out/quickstart-fp32 --force

echo "== 3. build an int8 bundle for the host, calibrated on out/calib.npy"
$DEPLOYKIT build out/model.onnx --target host --precision int8 --calibration out/calib.npy \
    -o out/quickstart-int8 --force

echo "== 4. run the generated runner (random input + 20 timed runs)"
"$PYTHON" out/quickstart-fp32/runner.py --benchmark 20
"$PYTHON" out/quickstart-int8/runner.py --benchmark 20

echo "== 5. accuracy of both bundles on the held-out test set, through the Runner API"
"$PYTHON" evaluate.py out/test.npz out/quickstart-fp32 out/quickstart-int8
