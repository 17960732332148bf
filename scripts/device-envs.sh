#!/usr/bin/env bash
# Best effort: create the device-side Python environments that tests use to run generated code
# under the device's own Python and runtime versions (skipped cleanly by the tests when absent).
#   ~/.cache/deploykit/venvs/ov2022 : Python 3.10 + openvino 2022.3.1 (NCS2 / OpenVINO 2022.3 LTS)
#   ~/.cache/deploykit/venvs/py36   : Python 3.6 + numpy 1.19.5 + onnxruntime 1.10.0 (Jetson Nano)
set -u
root="${HOME}/.cache/deploykit/venvs"
mkdir -p "$root"
pyenv_root="$(pyenv root 2>/dev/null || echo "${HOME}/.pyenv")"

find_python() {  # $1 = major.minor
  for p in "$pyenv_root"/versions/"$1".*/bin/python"$1" "$(command -v python"$1" 2>/dev/null)"; do
    [ -x "$p" ] && { echo "$p"; return 0; }
  done
  return 1
}

if [ ! -x "$root/ov2022/bin/python" ] || ! "$root/ov2022/bin/python" -c "import openvino" 2>/dev/null; then
  if py=$(find_python 3.10); then
    echo "device-envs: creating ov2022 (Python 3.10, openvino 2022.3.1)"
    "$py" -m venv "$root/ov2022" \
      && "$root/ov2022/bin/pip" install -q --disable-pip-version-check 'openvino==2022.3.1' 'numpy<1.25' \
      || echo "device-envs: ov2022 could not be created (tests will skip)"
  else
    echo "device-envs: no Python 3.10; OpenVINO 2022.3 tests will skip"
  fi
fi

if [ ! -x "$root/py36/bin/python" ] || ! "$root/py36/bin/python" -c "import onnxruntime" 2>/dev/null; then
  if py=$(find_python 3.6); then
    echo "device-envs: creating py36 (Python 3.6, numpy 1.19.5, onnxruntime 1.10.0)"
    "$py" -m venv "$root/py36" \
      && "$root/py36/bin/pip" install -q -U 'pip<22' \
      && "$root/py36/bin/pip" install -q --only-binary=:all: 'numpy==1.19.5' 'onnxruntime==1.10.0' \
      || echo "device-envs: py36 could not be created (tests will skip)"
  else
    echo "device-envs: no Python 3.6; Jetson Nano runner tests will skip"
  fi
fi
exit 0
