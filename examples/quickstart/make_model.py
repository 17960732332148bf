#!/usr/bin/env python3
"""Train a tiny CNN with numpy only and export it as ONNX: the quickstart's model.

The task: 16x16 grayscale images of one noisy stroke pattern each, four classes
(0 horizontal bar, 1 vertical bar, 2 cross, 3 diagonal). The network is

    image[1,1,16,16] -> Conv 3x3 (8) -> Relu -> MaxPool 2x2 -> Conv 3x3 (16) -> Relu
                     -> GlobalAveragePool -> Flatten -> Gemm (4) -> scores[1,4]

trained with plain numpy (im2col convolutions, hand-written backprop, Adam) in a few seconds.
Writes into --out (default ./out):

    model.onnx   the trained network (opset 17), input "image", output "scores" (logits)
    calib.npy    calibration samples for int8, shape [N,1,16,16] (samples on axis 0, batch removed)
    test.npz     held-out labeled test set: x [N,1,16,16] float32, y [N] int64,
                 numpy_accuracy (the accuracy of the numpy forward pass on x)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

# The matrices here are tiny: a multi-threaded BLAS spends more time syncing threads than
# multiplying (5-10x slower on a busy machine). Set before numpy loads its BLAS.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

CLASSES = ("horizontal bar", "vertical bar", "cross", "diagonal")
SIZE = 16


# -- data -----------------------------------------------------------------------------------
def make_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy images [n,1,16,16] float32 and labels [n] int64, classes balanced."""
    labels = np.arange(n) % len(CLASSES)
    rng.shuffle(labels)
    x = rng.normal(0.0, 0.35, size=(n, 1, SIZE, SIZE)).astype(np.float32)
    for img, label in zip(x[:, 0], labels):
        length = int(rng.integers(7, 15))
        thick = int(rng.integers(1, 3))
        value = float(rng.uniform(0.8, 1.4))
        r0, c0 = (int(v) for v in rng.integers(1, SIZE - length, size=2, endpoint=True))
        rows, cols = slice(r0, r0 + length), slice(c0, c0 + length)
        mid_r, mid_c = r0 + length // 2, c0 + length // 2
        if label in (0, 2):  # horizontal stroke
            img[mid_r:mid_r + thick, cols] += value
        if label in (1, 2):  # vertical stroke
            img[rows, mid_c:mid_c + thick] += value
        if label == 3:  # one diagonal, either direction
            idx = np.arange(length)
            cc = c0 + (idx if rng.random() < 0.5 else length - 1 - idx)
            for t in range(thick):
                img[np.clip(r0 + idx + t, 0, SIZE - 1), cc] += value
    return x, labels.astype(np.int64)


# -- layers (NCHW, numpy) -------------------------------------------------------------------
def im2col(x: np.ndarray, k: int = 3, pad: int = 1) -> np.ndarray:
    """[N,C,H,W] -> [N*H*W, C*k*k] patches for a stride-1 'same' convolution."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.empty((n, c, k, k, h, w), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = xp[:, :, i:i + h, j:j + w]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * h * w, c * k * k)


def col2im(cols: np.ndarray, shape: tuple[int, ...], k: int = 3, pad: int = 1) -> np.ndarray:
    n, c, h, w = shape
    cols = cols.reshape(n, h, w, c, k, k).transpose(0, 3, 4, 5, 1, 2)
    xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=cols.dtype)
    for i in range(k):
        for j in range(k):
            xp[:, :, i:i + h, j:j + w] += cols[:, :, i, j]
    return xp[:, :, pad:pad + h, pad:pad + w]


def conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, _, h, wd = x.shape
    cols = im2col(x)
    y = cols @ w.reshape(w.shape[0], -1).T + b
    return y.reshape(n, h, wd, -1).transpose(0, 3, 1, 2), cols


def init_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    def he(shape):
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    return {
        "conv1.W": he((8, 1, 3, 3)), "conv1.B": np.zeros(8, np.float32),
        "conv2.W": he((16, 8, 3, 3)), "conv2.B": np.zeros(16, np.float32),
        "fc.W": he((4, 16)), "fc.B": np.zeros(4, np.float32),
    }


def forward(p: dict[str, np.ndarray], x: np.ndarray, cache: dict | None = None) -> np.ndarray:
    """Logits [N,4]; exactly what the exported ONNX graph computes."""
    a1, cols1 = conv(x, p["conv1.W"], p["conv1.B"])
    r1 = np.maximum(a1, 0)
    n, c, h, w = r1.shape
    blocks = r1.reshape(n, c, h // 2, 2, w // 2, 2)
    m1 = blocks.max(axis=(3, 5))
    a2, cols2 = conv(m1, p["conv2.W"], p["conv2.B"])
    r2 = np.maximum(a2, 0)
    g = r2.mean(axis=(2, 3))
    logits = g @ p["fc.W"].T + p["fc.B"]
    if cache is not None:
        cache.update(cols1=cols1, a1=a1, blocks=blocks, m1=m1, cols2=cols2, a2=a2, g=g)
    return logits


def backward(p: dict[str, np.ndarray], c: dict, dlogits: np.ndarray) -> dict[str, np.ndarray]:
    grads = {"fc.W": dlogits.T @ c["g"], "fc.B": dlogits.sum(0)}
    dg = dlogits @ p["fc.W"]
    n, ch, h, w = c["a2"].shape
    dr2 = np.broadcast_to(dg[:, :, None, None] / (h * w), c["a2"].shape)
    da2 = dr2 * (c["a2"] > 0)
    da2_flat = da2.transpose(0, 2, 3, 1).reshape(-1, ch)
    grads["conv2.W"] = (da2_flat.T @ c["cols2"]).reshape(p["conv2.W"].shape)
    grads["conv2.B"] = da2_flat.sum(0)
    dm1 = col2im(da2_flat @ p["conv2.W"].reshape(ch, -1), c["m1"].shape)
    # max-pool backward: route the gradient to the max of each 2x2 block (shared on ties)
    blocks = c["blocks"]
    mask = blocks == c["m1"][:, :, :, None, :, None]
    dblocks = mask * dm1[:, :, :, None, :, None] / mask.sum(axis=(3, 5), keepdims=True).astype(np.float32)
    dr1 = dblocks.reshape(c["a1"].shape)
    da1 = dr1 * (c["a1"] > 0)
    c1 = da1.shape[1]
    da1_flat = da1.transpose(0, 2, 3, 1).reshape(-1, c1)
    grads["conv1.W"] = (da1_flat.T @ c["cols1"]).reshape(p["conv1.W"].shape)
    grads["conv1.B"] = da1_flat.sum(0)
    return grads


def train(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, epochs: int = 12, batch: int = 64,
          lr: float = 0.01) -> dict[str, np.ndarray]:
    p = init_params(rng)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    step = 0
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        total = 0.0
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            cache: dict = {}
            logits = forward(p, x[idx], cache)
            z = logits - logits.max(1, keepdims=True)
            prob = np.exp(z) / np.exp(z).sum(1, keepdims=True)
            total += float(-np.log(prob[np.arange(len(idx)), y[idx]] + 1e-12).sum())
            dlogits = prob
            dlogits[np.arange(len(idx)), y[idx]] -= 1.0
            grads = backward(p, cache, dlogits / len(idx))
            step += 1
            for k in p:  # Adam
                m[k] = 0.9 * m[k] + 0.1 * grads[k]
                v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
                mhat, vhat = m[k] / (1 - 0.9 ** step), v[k] / (1 - 0.999 ** step)
                p[k] = (p[k] - lr * mhat / (np.sqrt(vhat) + 1e-8)).astype(np.float32)
        print(f"  epoch {epoch + 1:2d}: loss {total / len(x):.4f}")
    return p


def accuracy(p: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    return float((forward(p, x).argmax(1) == y).mean())


# -- ONNX export -----------------------------------------------------------------------------
def export_onnx(p: dict[str, np.ndarray], path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Conv", ["image", "conv1.W", "conv1.B"], ["conv1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"),
        helper.make_node("MaxPool", ["relu1"], ["pool1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["pool1", "conv2.W", "conv2.B"], ["conv2"], name="conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv2"], ["relu2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["relu2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["features"], name="flatten"),
        helper.make_node("Gemm", ["features", "fc.W", "fc.B"], ["scores"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "quickstart_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, SIZE, SIZE])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, len(CLASSES)])],
        [numpy_helper.from_array(np.ascontiguousarray(v, dtype=np.float32), k) for k, v in p.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="deploykit-quickstart")
    model.ir_version = 8
    model.doc_string = "bars vs crosses: " + ", ".join(f"{i}={c}" for i, c in enumerate(CLASSES))
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString(deterministic=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: ./out)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(args.seed)
    x_train, y_train = make_images(2048, rng)
    x_test, y_test = make_images(400, rng)
    x_calib, _ = make_images(64, rng)

    t0 = time.perf_counter()
    print(f"training a {len(CLASSES)}-class CNN on {len(x_train)} synthetic 16x16 images (numpy only)")
    params = train(x_train, y_train, rng, epochs=args.epochs)
    acc = accuracy(params, x_test, y_test)
    print(f"trained in {time.perf_counter() - t0:.1f} s; train accuracy {accuracy(params, x_train, y_train):.2%}, "
          f"test accuracy (numpy) {acc:.2%} on {len(x_test)} images")

    export_onnx(params, args.out / "model.onnx")
    np.save(args.out / "calib.npy", x_calib)
    np.savez(args.out / "test.npz", x=x_test, y=y_test, numpy_accuracy=np.float64(acc))
    print(f"wrote {args.out / 'model.onnx'}, {args.out / 'calib.npy'} {list(x_calib.shape)}, "
          f"{args.out / 'test.npz'} ({len(x_test)} labeled images)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
