"""Optional training after compression: knowledge distillation of a compressed (student) model
from the original (teacher) model, in PyTorch. Install with ``pip install 'deploykit[train]'``.

Public API::

    from deploykit.train import distill, require_torch
    trained, details = distill(student, teacher, samples=[{"x": x}, ...], steps=300, lr=1e-3)

Nothing here imports torch at import time: ``deploykit`` and every default path run without it.
The data distillation needs are *unlabeled* inputs shaped like the model's input — the same
``.npy``/``.npz`` calibration data ``deploykit build``/``optimize`` take: the teacher's outputs are
the targets. The more samples and the closer they are to what the device will see, the better the
student recovers; the last samples are held out to check the result and are never trained on.
"""

from __future__ import annotations

from deploykit.train.distill import TORCH_HINT, distill, require_torch, supported_ops

__all__ = ["TORCH_HINT", "distill", "require_torch", "supported_ops"]
