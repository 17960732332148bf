"""Knowledge distillation: train a compressed model's weights to reproduce the original's outputs."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import onnx

from deploykit.errors import DeployError

TORCH_HINT = "pip install 'deploykit[train]' (CPU build: pip install torch==2.13.0)"
CLUSTERED_MAX_VALUES = 256  # a weight with at most this many distinct values (and repeats) was clustered: kept frozen
SPARSE_MIN_ZEROS = 0.05     # a weight with at least this share of exact zeros keeps its zeros (sparsity mask)


def require_torch():
    """The ``torch`` module, or a :class:`DeployError` that says how to install it."""
    try:
        import torch
    except ImportError as e:
        raise DeployError(f"training needs PyTorch: {TORCH_HINT}") from e
    return torch


def supported_ops() -> list[str]:
    """Op types the training executor runs (needs torch)."""
    require_torch()
    from deploykit.train.ops import OPS

    return sorted(OPS)


def _logit_names(model: onnx.ModelProto) -> list[str]:
    """Per graph output: the Softmax input when a Softmax produces it (compare logits), else itself."""
    producer = {o: n for n in model.graph.node for o in n.output}
    names = []
    for out in model.graph.output:
        node = producer.get(out.name)
        names.append(node.input[0] if node is not None and node.op_type == "Softmax" else out.name)
    return names


def _teacher_targets(teacher: onnx.ModelProto, names: list[str], samples: list[dict]) -> list[list[np.ndarray]]:
    import onnxruntime as ort
    from onnx import helper

    m = onnx.ModelProto()
    m.CopyFrom(teacher)
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # fp32, exactly the graph
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds_names = {i.name for i in sess.get_inputs()}
    return [[np.asarray(v, np.float32) for v in sess.run(names, {k: v for k, v in s.items() if k in feeds_names})]
            for s in samples]


def _frozen_and_masks(net, torch) -> tuple[set[str], dict]:
    frozen, masks = set(), {}
    for name in net.param_names:
        p = net.parameter(name)
        flat = p.detach().reshape(-1)
        n_unique = int(torch.unique(flat).numel())
        if flat.numel() >= 16 and n_unique <= CLUSTERED_MAX_VALUES and n_unique * 2 <= flat.numel():
            frozen.add(name)
            p.requires_grad_(False)
            continue
        zeros = (flat == 0).float().mean().item()
        if zeros >= SPARSE_MIN_ZEROS and flat.numel() >= 16:
            masks[name] = (p.detach() != 0).float()
    return frozen, masks


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    d = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / d) if d > 0 else float(np.allclose(a, b))


def distill(student: onnx.ModelProto, teacher: onnx.ModelProto, samples: list[dict[str, np.ndarray]], steps: int,
            lr: float = 1e-3, *, batch_size: int = 8, holdout: int | None = None, seed: int = 0, augment: float = 0.0,
            log: Callable[[str], None] | None = None) -> tuple[onnx.ModelProto, dict]:
    """Train ``student``'s weights so its outputs match ``teacher``'s on ``samples``.

    :param student: the compressed model (its float weights of Conv/Gemm/MatMul/BN/biases are trained;
        clustered weights stay frozen, zeros of sparse weights stay zero).
    :param teacher: the reference model (run in ONNX Runtime, fp32); same inputs and outputs.
    :param samples: unlabeled model feeds (input name -> array with batch 1), e.g. calibration samples.
    :param steps: optimizer steps (Adam, cosine-decayed learning rate ``lr``) on batches of ``batch_size``.
    :param holdout: how many of the last samples are kept out of training to check the result
        (default ``min(4, N // 5)``); losses and cosine are reported on them.
    :param augment: std of Gaussian noise added to training inputs, relative to each input's std (0 = off).
    :returns: (the student with trained weights written back into its initializers — same graph, names
        and dtypes — or unchanged when training did not lower the check loss, details).
    Loss: MSE between the student's and the teacher's outputs, on the logits where an output comes from a Softmax.
    """
    torch = require_torch()
    from deploykit.train.executor import TorchGraph, _to_torch, stack, write_weights

    log = log or (lambda _m: None)
    if steps < 1:
        raise DeployError(f"fine-tuning needs at least 1 step (got {steps})")
    if not samples:
        raise DeployError("fine-tuning needs samples: pass calibration data (unlabeled inputs shaped like the model input)")
    if len(student.graph.output) != len(teacher.graph.output):
        raise DeployError("student and teacher have a different number of outputs")
    t0 = time.perf_counter()
    n = len(samples)
    holdout = min(4, n // 5) if holdout is None else max(0, min(holdout, n - 1))
    train_s, check_s = samples[: n - holdout], samples[n - holdout:]
    s_names, t_names = _logit_names(student), _logit_names(teacher)
    targets = _teacher_targets(teacher, t_names, samples)
    train_t, check_t = targets[: n - holdout], targets[n - holdout:]

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = TorchGraph(student)
    net.eval()
    batched = len(train_s) >= 2 and batch_size > 1 and net.fits_batches(train_s[:2], s_names)
    frozen, masks = _frozen_and_masks(net, torch)
    params = [p for p in net.params if p.requires_grad]
    if not params:
        raise DeployError("the student has no trainable float weights (all clustered or none in Conv/Gemm/MatMul)")
    scales = {k: float(np.std(np.concatenate([s[k].ravel() for s in train_s[:64]]))) or 1.0 for k in train_s[0]
              if np.asarray(train_s[0][k]).dtype.kind == "f"}

    def loss_of(feeds: list[dict], tgts: list[list[np.ndarray]], grad: bool):
        if batched or len(feeds) == 1:
            net.batch = len(feeds)
            try:
                out = net(_to_torch(stack(feeds)), s_names)
            finally:
                net.batch = 1
            total = sum(torch.mean((out[s] - torch.from_numpy(np.concatenate([t[i] for t in tgts]))) ** 2)
                        for i, s in enumerate(s_names))
            return total / len(s_names)
        total = 0.0
        for f, t in zip(feeds, tgts):  # graph cannot batch: one sample at a time, gradients accumulate
            out = net(_to_torch(f), s_names)
            total = total + sum(torch.mean((out[s] - torch.from_numpy(t[i])) ** 2) for i, s in enumerate(s_names))
        return total / (len(feeds) * len(s_names))

    def evaluate(feeds, tgts) -> tuple[float | None, float | None]:
        if not feeds:
            return None, None
        with torch.no_grad():
            losses, cos = [], []
            for i in range(0, len(feeds), 16):
                part_f, part_t = feeds[i:i + 16], tgts[i:i + 16]
                losses.append(float(loss_of(part_f, part_t, False)) * len(part_f))
            for f, t in zip(feeds[:64], tgts[:64]):
                out = net(_to_torch(f), s_names)
                cos.append(np.mean([_cosine(out[s].numpy(), t[j]) for j, s in enumerate(s_names)]))
        return sum(losses) / len(feeds), float(np.mean(cos))

    train_eval = (train_s[:64], train_t[:64])
    before_train, _ = evaluate(*train_eval)
    before_check, before_cos = evaluate(check_s, check_t)
    log(f"distill: {len(train_s)} training / {len(check_s)} held-out samples, {len(params)} trainable tensors"
        f"{f' ({len(frozen)} clustered kept frozen)' if frozen else ''}, {'batches' if batched else 'one sample at a time'}; "
        f"loss before {before_train:.4g}")
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * k / steps)) * 0.9 + 0.1)
    bs = max(1, min(batch_size, len(train_s)))
    order, pos = rng.permutation(len(train_s)), 0
    every = max(1, steps // 5)
    for step in range(steps):
        if pos + bs > len(order):
            order, pos = rng.permutation(len(train_s)), 0
        idx = order[pos:pos + bs]
        pos += bs
        feeds = [train_s[i] for i in idx]
        if augment > 0:
            feeds = [{k: (v + rng.standard_normal(v.shape).astype(v.dtype) * augment * scales[k]) if k in scales else v
                      for k, v in f.items()} for f in feeds]
        loss = loss_of(feeds, [train_t[i] for i in idx], True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if masks:
            with torch.no_grad():
                for name, mask in masks.items():
                    net.parameter(name).mul_(mask)
        if (step + 1) % every == 0 or step + 1 == steps:
            log(f"distill: step {step + 1}/{steps} loss {float(loss.detach()):.4g}")
    after_train, _ = evaluate(*train_eval)
    after_check, after_cos = evaluate(check_s, check_t)
    judge_before, judge_after = (before_check, after_check) if check_s else (before_train, after_train)
    improved = judge_after < judge_before
    trained = write_weights(student, net.weights()) if improved else student
    details = {
        "steps": steps, "lr": lr, "batch_size": bs, "batched": batched, "seed": seed, "augment": augment,
        "train_samples": len(train_s), "heldout_samples": len(check_s),
        "loss_before": before_train, "loss_after": after_train,
        "heldout_loss_before": before_check, "heldout_loss_after": after_check,
        "heldout_cosine_before": before_cos, "heldout_cosine_after": after_cos,
        "compared": ["logits of " + t if s != o.name else o.name for s, t, o in zip(s_names, t_names, student.graph.output)],
        "trained_tensors": len(params), "frozen_clustered": sorted(frozen), "sparse_masked": sorted(masks),
        "applied": improved, "time_s": round(time.perf_counter() - t0, 2),
    }
    if not improved:
        log("warning: distillation did not lower the loss on the held-out samples; the compressed weights are kept")
    return trained, details
