#!/usr/bin/env bash
# CI job of the fleet: build the whole matrix, fail on any build failure or missed accuracy gate.
#
#   bash examples/fleet/ci.sh        # exit 0: every bundle built and passed its gate
#
# Exit codes: 0 all good, 2 a bundle failed to build (the others are still built: keep-going),
# 4 a bundle missed its accuracy gate (verification vs fp32 or the int8 accuracy budget).
# dist/ holds the bundles, dist/matrix.json, dist/matrix.html and dist/_logs/ either way: upload it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
PYTHON="${PYTHON:-python3}"
DEPLOYKIT="${DEPLOYKIT:-deploykit}"

"$PYTHON" make_models.py
# -j: all cores (the default); memory-aware from the previous run's peaks in the cache
$DEPLOYKIT build --strict "$@"
