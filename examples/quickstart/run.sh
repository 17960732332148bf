#!/usr/bin/env bash
# deploykit quickstart: train a tiny CNN, build fp32 and int8 bundles for the host, run and evaluate them.
#
#   bash examples/quickstart/run.sh          # from anywhere; writes examples/quickstart/out/
#
# Environment: OUT (output folder, default: out/ beside this script), PYTHON (default: python3),
# DEPLOYKIT (default: deploykit; e.g. DEPLOYKIT="python -m deploykit.cli.app").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
OUT="${OUT:-out}"
PYTHON="${PYTHON:-python3}"
DEPLOYKIT="${DEPLOYKIT:-deploykit}"

echo "== 1. train the model with numpy; export $OUT/model.onnx, $OUT/calib.npy, $OUT/test.npz"
"$PYTHON" make_model.py --out "$OUT"

echo "== 2. build an fp32 bundle for the host"
$DEPLOYKIT build "$OUT/model.onnx" --target host -o "$OUT/quickstart-fp32" --force

echo "== 3. build an int8 bundle for the host, calibrated on $OUT/calib.npy"
$DEPLOYKIT build "$OUT/model.onnx" --target host --precision int8 --calibration "$OUT/calib.npy" \
    -o "$OUT/quickstart-int8" --force

echo "== 4. run the generated runners (random input + 20 timed runs)"
"$PYTHON" "$OUT/quickstart-fp32/runner.py" --benchmark 20
"$PYTHON" "$OUT/quickstart-int8/runner.py" --benchmark 20

echo "== 5. accuracy of both bundles on the held-out test set, through the Runner API"
"$PYTHON" evaluate.py "$OUT/test.npz" "$OUT/quickstart-fp32" "$OUT/quickstart-int8"
