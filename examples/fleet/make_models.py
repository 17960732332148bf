"""Write the fleet example's models and calibration data (no download).

    python examples/fleet/make_models.py [--out DIR]   # writes models/ and data/ beside this file (or in DIR)

- classifier: the repository's small mobile-style CNN (tests/modelzoo.py: Conv-BN-HardSwish, depthwise, residual)
- encoder:    the repository's small transformer block (two inputs: token ids and features)
- squeezenet: light_squeezenet from the onnx wheel's backend test data (1.2 M parameters, 224x224)
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests"))

import modelzoo  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE, help="folder to write models/ and data/ into")
    out = ap.parse_args().out
    models, data = out / "models", out / "data"
    models.mkdir(exist_ok=True)
    data.mkdir(exist_ok=True)
    rng = np.random.default_rng(2024)
    modelzoo.small_cnn(models / "classifier.onnx")
    np.save(data / "classifier_calib.npy", rng.normal(0, 1, (32, 3, 16, 16)).astype(np.float32))
    modelzoo.small_transformer(models / "encoder.onnx")
    np.savez(data / "encoder_calib.npz", tokens=rng.integers(0, 32, (32, 8)).astype(np.int64),
             features=rng.normal(0, 1, (32, 8, 16)).astype(np.float32))
    squeezenet = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_squeezenet.onnx"
    shutil.copyfile(squeezenet, models / "squeezenet.onnx")
    np.save(data / "squeezenet_calib.npy", rng.uniform(0, 1, (16, 3, 224, 224)).astype(np.float32))
    print(f"wrote {len(list(models.glob('*.onnx')))} models to {models} and their calibration data to {data}")


if __name__ == "__main__":
    main()
