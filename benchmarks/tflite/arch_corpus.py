"""Generality corpus for the tflite backend (dev-time only): ``python benchmarks/tflite/arch_corpus.py``.

Writes common architectures in plain ``torch.nn`` (random init, small widths), exports each to
ONNX at opset 13 and 17 (``torch.onnx.export(..., dynamo=False)``), then builds every file with
``deploykit build --target rpi4`` in fp32, fp16 and int8 (random calibration ``.npy``) through the
CLI and records: built?, verification status and metrics, unsupported ops / error line. The table
goes to ``benchmarks/results/tflite_arch_corpus.md`` (+ ``.json``).

torch is never a dependency of deploykit: the export step runs under ``--torch-python PY`` (an
interpreter with torch, e.g. a throwaway venv) or the current one; when neither has torch the
script says so and exits 0. The exported models are not committed (``--work DIR``, a temp folder).

    python benchmarks/tflite/arch_corpus.py --torch-python ~/venvs/torch/bin/python [--only lstm,gru]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
ENV = {**os.environ, "DEPLOYKIT_PLUGINS": "profiles,onnxruntime,tflite"}
PRECISIONS = ("fp32", "fp16", "int8")
OPSETS = (13, 17)

# --- the architectures (run in the torch interpreter: this block is passed to it as source) ---
ARCHS = r'''
import math, torch, torch.nn as nn, torch.nn.functional as F

def cbr(i, o, k=3, s=1, g=1, act=nn.ReLU):
    return nn.Sequential(nn.Conv2d(i, o, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(o), act())

class Basic(nn.Module):
    def __init__(s, i, o, st):
        super().__init__()
        s.c1 = cbr(i, o, 3, st); s.c2 = nn.Sequential(nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o))
        s.sc = nn.Sequential() if st == 1 and i == o else nn.Sequential(nn.Conv2d(i, o, 1, st, bias=False), nn.BatchNorm2d(o))
    def forward(s, x): return F.relu(s.c2(s.c1(x)) + s.sc(x))

class ResNet(nn.Module):
    def __init__(s):
        super().__init__()
        s.stem = nn.Sequential(cbr(3, 16, 7, 2), nn.MaxPool2d(3, 2, 1))
        s.layers = nn.Sequential(Basic(16, 16, 1), Basic(16, 32, 2), Basic(32, 64, 2), Basic(64, 64, 2))
        s.fc = nn.Linear(64, 10)
    def forward(s, x): return s.fc(torch.flatten(F.adaptive_avg_pool2d(s.layers(s.stem(x)), 1), 1))

class InvRes(nn.Module):
    def __init__(s, i, o, st, e, act=nn.ReLU6, se=None, k=3):
        super().__init__()
        h = i * e
        layers = [cbr(i, h, 1, act=act), cbr(h, h, k, st, g=h, act=act)]
        if se: layers.append(se(h))
        layers += [nn.Conv2d(h, o, 1, bias=False), nn.BatchNorm2d(o)]
        s.b = nn.Sequential(*layers); s.res = st == 1 and i == o
    def forward(s, x): return x + s.b(x) if s.res else s.b(x)

class MobileNetV2(nn.Module):
    def __init__(s):
        super().__init__()
        s.f = nn.Sequential(cbr(3, 16, 3, 2, act=nn.ReLU6), InvRes(16, 16, 1, 1), InvRes(16, 24, 2, 4), InvRes(24, 24, 1, 4),
                            InvRes(24, 32, 2, 4), InvRes(32, 32, 1, 4), cbr(32, 128, 1, act=nn.ReLU6))
        s.c = nn.Sequential(nn.Dropout(0.2), nn.Linear(128, 10))
    def forward(s, x): return s.c(s.f(x).mean([2, 3]))

class SEHard(nn.Module):
    def __init__(s, c):
        super().__init__(); s.f1 = nn.Conv2d(c, c // 4, 1); s.f2 = nn.Conv2d(c // 4, c, 1)
    def forward(s, x): return x * F.hardsigmoid(s.f2(F.relu(s.f1(F.adaptive_avg_pool2d(x, 1)))))

class MobileNetV3(nn.Module):
    def __init__(s):
        super().__init__()
        hs = nn.Hardswish
        s.f = nn.Sequential(cbr(3, 16, 3, 2, act=hs), InvRes(16, 16, 2, 1, nn.ReLU, SEHard), InvRes(16, 24, 2, 4, nn.ReLU),
                            InvRes(24, 40, 2, 3, hs, SEHard, 5), InvRes(40, 40, 1, 3, hs, SEHard, 5), cbr(40, 96, 1, act=hs))
        s.c = nn.Sequential(nn.Linear(96, 128), nn.Hardswish(), nn.Linear(128, 10))
    def forward(s, x): return s.c(torch.flatten(F.adaptive_avg_pool2d(s.f(x), 1), 1))

class SESig(nn.Module):
    def __init__(s, c):
        super().__init__(); s.f1 = nn.Conv2d(c, max(c // 4, 4), 1); s.f2 = nn.Conv2d(max(c // 4, 4), c, 1)
    def forward(s, x): return x * torch.sigmoid(s.f2(F.silu(s.f1(x.mean((2, 3), keepdim=True)))))

class EfficientNet(nn.Module):
    def __init__(s):
        super().__init__()
        a = nn.SiLU
        s.f = nn.Sequential(cbr(3, 16, 3, 2, act=a), InvRes(16, 16, 1, 1, a, SESig), InvRes(16, 24, 2, 6, a, SESig),
                            InvRes(24, 40, 2, 6, a, SESig, 5), cbr(40, 128, 1, act=a))
        s.fc = nn.Linear(128, 10)
    def forward(s, x): return s.fc(F.adaptive_avg_pool2d(s.f(x), 1).flatten(1))

def shuffle(x, g):
    n, c, h, w = x.shape
    return x.view(n, g, c // g, h, w).transpose(1, 2).contiguous().view(n, c, h, w)

class ShuffleUnit(nn.Module):
    def __init__(s, i, o, st):
        super().__init__()
        s.st = st; b = o // 2
        if st > 1:
            s.b1 = nn.Sequential(nn.Conv2d(i, i, 3, st, 1, groups=i, bias=False), nn.BatchNorm2d(i), cbr(i, b, 1))
        s.b2 = nn.Sequential(cbr(i if st > 1 else b, b, 1), nn.Conv2d(b, b, 3, st, 1, groups=b, bias=False),
                             nn.BatchNorm2d(b), cbr(b, b, 1))
    def forward(s, x):
        if s.st == 1:
            x1, x2 = x.chunk(2, dim=1); out = torch.cat((x1, s.b2(x2)), 1)
        else:
            out = torch.cat((s.b1(x), s.b2(x)), 1)
        return shuffle(out, 2)

class ShuffleNetV2(nn.Module):
    def __init__(s):
        super().__init__()
        s.f = nn.Sequential(cbr(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1), ShuffleUnit(24, 48, 2), ShuffleUnit(48, 48, 1),
                            ShuffleUnit(48, 96, 2), ShuffleUnit(96, 96, 1), cbr(96, 256, 1))
        s.fc = nn.Linear(256, 10)
    def forward(s, x): return s.fc(s.f(x).mean([2, 3]))

class Fire(nn.Module):
    def __init__(s, i, sq, e):
        super().__init__(); s.s = nn.Conv2d(i, sq, 1); s.e1 = nn.Conv2d(sq, e, 1); s.e3 = nn.Conv2d(sq, e, 3, padding=1)
    def forward(s, x):
        x = F.relu(s.s(x)); return torch.cat([F.relu(s.e1(x)), F.relu(s.e3(x))], 1)

class SqueezeNet(nn.Module):
    def __init__(s):
        super().__init__()
        s.f = nn.Sequential(nn.Conv2d(3, 32, 3, 2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True), Fire(32, 8, 32),
                            Fire(64, 8, 32), nn.MaxPool2d(3, 2, ceil_mode=True), Fire(64, 16, 64))
        s.c = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(128, 10, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    def forward(s, x): return torch.flatten(s.c(s.f(x)), 1)

class DenseNet(nn.Module):
    def __init__(s, g=8):
        super().__init__()
        s.stem = nn.Conv2d(3, 16, 3, 2, 1)
        s.layers = nn.ModuleList([nn.Sequential(nn.BatchNorm2d(16 + i * g), nn.ReLU(), nn.Conv2d(16 + i * g, 4 * g, 1),
                                                nn.BatchNorm2d(4 * g), nn.ReLU(), nn.Conv2d(4 * g, g, 3, padding=1))
                                  for i in range(4)])
        s.trans = nn.Sequential(nn.BatchNorm2d(48), nn.ReLU(), nn.Conv2d(48, 24, 1), nn.AvgPool2d(2, 2))
        s.fc = nn.Linear(24, 10)
    def forward(s, x):
        x = s.stem(x)
        for l in s.layers:
            x = torch.cat([x, l(x)], 1)
        return s.fc(F.adaptive_avg_pool2d(s.trans(x), 1).flatten(1))

class UNet(nn.Module):
    def __init__(s):
        super().__init__()
        s.e1 = cbr(3, 16); s.e2 = cbr(16, 32); s.e3 = cbr(32, 64)
        s.up1 = nn.ConvTranspose2d(64, 32, 2, 2); s.d1 = cbr(64, 32)
        s.d2 = cbr(48, 16); s.out = nn.Conv2d(16, 2, 1)
    def forward(s, x):
        a = s.e1(x); b = s.e2(F.max_pool2d(a, 2)); c = s.e3(F.max_pool2d(b, 2))
        d = s.d1(torch.cat([s.up1(c), b], 1))
        d = F.interpolate(d, scale_factor=2, mode="bilinear", align_corners=False)
        e = s.d2(torch.cat([d, a], 1))
        return s.out(F.interpolate(e, scale_factor=1, mode="nearest"))

class YoloHead(nn.Module):
    def __init__(s, na=3, nc=4):
        super().__init__()
        s.na, s.no = na, nc + 5
        s.back = nn.Sequential(cbr(3, 16, 3, 2, act=nn.SiLU), cbr(16, 32, 3, 2, act=nn.SiLU), cbr(32, 32, 3, 2, act=nn.SiLU))
        s.p = nn.Conv2d(32, na * s.no, 1)
        s.register_buffer("anchor", torch.rand(1, na, 1, 1, 2) * 4)
    def forward(s, x):
        y = s.p(s.back(x)); n, _, h, w = y.shape
        y = y.view(n, s.na, s.no, h, w).permute(0, 1, 3, 4, 2).sigmoid()
        xy, wh, conf = y.split((2, 2, s.no - 4), 4)
        xy = xy * 2 - 0.5
        wh = (wh * 2) ** 2 * s.anchor
        return torch.cat((xy, wh, conf), 4).view(n, -1, s.no)

class ViT(nn.Module):
    def __init__(s, d=64, depth=2, heads=4, p=8, img=32):
        super().__init__()
        s.patch = nn.Conv2d(3, d, p, p); n = (img // p) ** 2
        s.cls = nn.Parameter(torch.randn(1, 1, d)); s.pos = nn.Parameter(torch.randn(1, n + 1, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
        s.enc = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        s.norm = nn.LayerNorm(d); s.head = nn.Linear(d, 10)
    def forward(s, x):
        x = s.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([s.cls.expand(x.shape[0], -1, -1), x], 1) + s.pos
        return s.head(s.norm(s.enc(x))[:, 0])

class TextEncoder(nn.Module):
    def __init__(s, vocab=100, d=32, heads=4, seq=16):
        super().__init__()
        s.emb = nn.Embedding(vocab, d); s.pos = nn.Parameter(torch.randn(1, seq, d) * 0.02)
        s.qkv = nn.Linear(d, 3 * d); s.o = nn.Linear(d, d); s.ln1 = nn.LayerNorm(d); s.ln2 = nn.LayerNorm(d)
        s.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d)); s.h = heads; s.cls = nn.Linear(d, 3)
    def forward(s, ids):
        mask = ids.eq(0)
        x = s.emb(ids) + s.pos
        n, t, d = x.shape
        q, k, v = s.qkv(s.ln1(x)).view(n, t, 3, s.h, d // s.h).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-1, -2)) / (d // s.h) ** 0.5
        a = a.masked_fill(mask[:, None, None, :], float("-inf") if False else -1e4)
        x = x + s.o((a.softmax(-1) @ v).transpose(1, 2).reshape(n, t, d))
        x = x + s.ff(s.ln2(x))
        return s.cls(x.mean(1))

class KWS(nn.Module):
    def __init__(s):
        super().__init__()
        s.f = nn.Sequential(nn.Conv1d(40, 64, 3, padding=1), nn.BatchNorm1d(64), nn.ReLU(),
                            nn.Conv1d(64, 64, 3, stride=2, padding=2, dilation=2), nn.BatchNorm1d(64), nn.ReLU(),
                            nn.Conv1d(64, 64, 5, padding=2, groups=64), nn.Conv1d(64, 32, 1), nn.ReLU(),
                            nn.AdaptiveAvgPool1d(1))
        s.fc = nn.Linear(32, 12)
    def forward(s, x): return s.fc(s.f(x).squeeze(-1))

class LSTMNet(nn.Module):
    def __init__(s, bi=False, layers=2):
        super().__init__(); s.rnn = nn.LSTM(20, 32, layers, batch_first=True, bidirectional=bi); s.fc = nn.Linear(64 if bi else 32, 5)
    def forward(s, x):
        y, _ = s.rnn(x); return s.fc(y)

class GRUNet(nn.Module):
    def __init__(s):
        super().__init__(); s.rnn = nn.GRU(20, 32, 1, batch_first=True); s.fc = nn.Linear(32, 5)
    def forward(s, x):
        y, h = s.rnn(x); return s.fc(y[:, -1])

class CRNN(nn.Module):
    def __init__(s, ncls=37):
        super().__init__()
        s.cnn = nn.Sequential(cbr(1, 16), nn.MaxPool2d(2, 2), cbr(16, 32), nn.MaxPool2d(2, 2), cbr(32, 64),
                              nn.MaxPool2d((2, 1), (2, 1)), cbr(64, 64), nn.AdaptiveAvgPool2d((1, None)))
        s.rnn = nn.LSTM(64, 48, 1, bidirectional=True, batch_first=True); s.fc = nn.Linear(96, ncls)
    def forward(s, x):
        f = s.cnn(x).squeeze(2).permute(0, 2, 1)
        y, _ = s.rnn(f); return s.fc(y).log_softmax(-1)

class MiscOps(nn.Module):
    """Softplus, Mish, GroupNorm, PixelShuffle (DepthToSpace CRD), Einsum, TopK."""
    def __init__(s):
        super().__init__()
        s.c1 = nn.Conv2d(3, 16, 3, 1, 1); s.gn = nn.GroupNorm(4, 16); s.c2 = nn.Conv2d(16, 32, 3, 1, 1)
        s.ps = nn.PixelShuffle(2); s.w = nn.Parameter(torch.randn(8, 8) * 0.3)
    def forward(s, x):
        y = F.mish(s.gn(s.c1(x)))
        y = s.ps(F.softplus(s.c2(y)))                       # [1, 8, 2H, 2W]
        z = torch.einsum("nchw,cd->ndhw", y, s.w)
        v, i = torch.topk(z.flatten(1), 5)
        return z, v

class Conv3DNet(nn.Module):
    def __init__(s):
        super().__init__(); s.c = nn.Conv3d(3, 8, 3, padding=1); s.fc = nn.Linear(8, 4)
    def forward(s, x): return s.fc(F.relu(s.c(x)).mean((2, 3, 4)))

class Bicubic(nn.Module):
    def __init__(s):
        super().__init__(); s.c = nn.Conv2d(3, 8, 3, 1, 1)
    def forward(s, x): return F.interpolate(s.c(x), scale_factor=2, mode="bicubic", align_corners=False)


class YoloV8ish(nn.Module):
    """SiLU C2f-like body, SPPF (MaxPool 5/1/2), nearest x2 upsample + concat, DFL box head (Softmax
    over 16 bins, 1x1 conv with fixed arange weights), Sigmoid classes."""
    def __init__(s, nc=3, reg=16):
        super().__init__()
        a = nn.SiLU
        s.b1 = nn.Sequential(cbr(3, 16, 3, 2, act=a), cbr(16, 32, 3, 2, act=a)); s.b2 = cbr(32, 64, 3, 2, act=a)
        s.sppf_in = cbr(64, 32, 1, act=a); s.sppf_out = cbr(128, 64, 1, act=a)
        s.fuse = cbr(96, 32, 3, act=a); s.box = nn.Conv2d(32, 4 * reg, 1); s.cls = nn.Conv2d(32, nc, 1)
        s.dfl = nn.Conv2d(reg, 1, 1, bias=False).requires_grad_(False)
        s.dfl.weight.data[:] = torch.arange(reg, dtype=torch.float).view(1, reg, 1, 1); s.reg = reg
    def forward(s, x):
        p3 = s.b1(x); p4 = s.b2(p3)
        y = s.sppf_in(p4); y1 = F.max_pool2d(y, 5, 1, 2); y2 = F.max_pool2d(y1, 5, 1, 2); y3 = F.max_pool2d(y2, 5, 1, 2)
        p4 = s.sppf_out(torch.cat([y, y1, y2, y3], 1))
        f = s.fuse(torch.cat([F.interpolate(p4, scale_factor=2.0, mode="nearest"), p3], 1))
        n, _, h, w = f.shape
        box = s.box(f).view(n, 4, s.reg, h * w).transpose(2, 1).softmax(1)
        box = s.dfl(box).view(n, 4, h * w)
        lt, rb = box.chunk(2, 1)
        return torch.cat([rb - lt, (lt + rb) / 2, s.cls(f).view(n, -1, h * w).sigmoid()], 1)

class ConvNeXtBlock(nn.Module):
    def __init__(s, d):
        super().__init__()
        s.dw = nn.Conv2d(d, d, 7, padding=3, groups=d); s.ln = nn.LayerNorm(d, eps=1e-6)
        s.pw1 = nn.Linear(d, 4 * d); s.pw2 = nn.Linear(4 * d, d); s.g = nn.Parameter(torch.full((d,), 0.5))
    def forward(s, x):
        y = s.dw(x).permute(0, 2, 3, 1)
        y = s.pw2(F.gelu(s.pw1(s.ln(y)))) * s.g
        return x + y.permute(0, 3, 1, 2)

class LayerNorm2d(nn.Module):
    def __init__(s, d):
        super().__init__(); s.w = nn.Parameter(torch.ones(d)); s.b = nn.Parameter(torch.zeros(d))
    def forward(s, x):
        u = x.mean(1, keepdim=True); v = (x - u).pow(2).mean(1, keepdim=True)
        return s.w[:, None, None] * ((x - u) / torch.sqrt(v + 1e-6)) + s.b[:, None, None]

class ConvNeXt(nn.Module):
    def __init__(s):
        super().__init__()
        s.stem = nn.Sequential(nn.Conv2d(3, 32, 4, 4), LayerNorm2d(32))
        s.s1 = ConvNeXtBlock(32); s.down = nn.Sequential(LayerNorm2d(32), nn.Conv2d(32, 64, 2, 2)); s.s2 = ConvNeXtBlock(64)
        s.head = nn.Sequential(nn.LayerNorm(64), nn.Linear(64, 10))
    def forward(s, x): return s.head(s.s2(s.down(s.s1(s.stem(x)))).mean([-2, -1]))

class SwinBlock(nn.Module):
    """Window attention with a cyclic shift (torch.roll), 6-D window partition, relative bias."""
    def __init__(s, d=32, heads=2, ws=4, shift=2):
        super().__init__()
        s.d, s.h, s.ws, s.shift = d, heads, ws, shift
        s.ln1 = nn.LayerNorm(d); s.qkv = nn.Linear(d, 3 * d); s.proj = nn.Linear(d, d); s.ln2 = nn.LayerNorm(d)
        s.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        s.bias = nn.Parameter(torch.randn(heads, ws * ws, ws * ws) * 0.1)
    def forward(s, x):  # x [B, H, W, C]
        B, H, W, C = x.shape; ws = s.ws
        y = torch.roll(s.ln1(x), shifts=(-s.shift, -s.shift), dims=(1, 2))
        y = y.view(B, H // ws, ws, W // ws, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, C)
        q, k, v = s.qkv(y).reshape(-1, ws * ws, 3, s.h, C // s.h).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-2, -1)) * (C // s.h) ** -0.5 + s.bias
        y = (a.softmax(-1) @ v).transpose(1, 2).reshape(-1, ws * ws, C)
        y = s.proj(y).view(B, H // ws, W // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, C)
        x = x + torch.roll(y, shifts=(s.shift, s.shift), dims=(1, 2))
        return x + s.mlp(s.ln2(x))

class Swin(nn.Module):
    def __init__(s):
        super().__init__(); s.patch = nn.Conv2d(3, 32, 4, 4); s.blk = SwinBlock(); s.head = nn.Linear(32, 10)
    def forward(s, x):
        y = s.blk(s.patch(x).permute(0, 2, 3, 1)); return s.head(y.mean((1, 2)))

class BertIsh(nn.Module):
    """HF-style: word + position + token-type embeddings, extended mask (1 - m) * -10000,
    erf GELU, pooler tanh; two inputs (ids, attention mask as int64)."""
    def __init__(s, vocab=120, d=32, heads=4, seq=12):
        super().__init__()
        s.we = nn.Embedding(vocab, d); s.pe = nn.Embedding(seq, d); s.te = nn.Embedding(2, d); s.ln0 = nn.LayerNorm(d)
        s.layer = nn.TransformerEncoderLayer(d, heads, 2 * d, 0.0, activation="gelu", batch_first=True)
        s.q = nn.Linear(d, d); s.k = nn.Linear(d, d); s.v = nn.Linear(d, d); s.o = nn.Linear(d, d); s.ln1 = nn.LayerNorm(d)
        s.ff1 = nn.Linear(d, 2 * d); s.ff2 = nn.Linear(2 * d, d); s.ln2 = nn.LayerNorm(d); s.pool = nn.Linear(d, d)
        s.h = heads; s.register_buffer("pos", torch.arange(seq).unsqueeze(0))
    def forward(s, ids, mask):
        n, t = ids.shape; d = s.q.in_features; dh = d // s.h
        x = s.ln0(s.we(ids) + s.pe(s.pos[:, :t]) + s.te(torch.zeros_like(ids)))
        ext = (1.0 - mask[:, None, None, :].to(x.dtype)) * -10000.0
        sp = lambda y: y.view(n, t, s.h, dh).permute(0, 2, 1, 3)
        a = torch.matmul(sp(s.q(x)), sp(s.k(x)).transpose(-1, -2)) / math.sqrt(dh) + ext
        c = torch.matmul(a.softmax(-1), sp(s.v(x))).permute(0, 2, 1, 3).contiguous().view(n, t, d)
        x = s.ln1(x + s.o(c))
        x = s.ln2(x + s.ff2(F.gelu(s.ff1(x))))
        return torch.tanh(s.pool(x[:, 0]))

class Wav2VecIsh(nn.Module):
    """Conv1d feature encoder with GroupNorm(C groups) + GELU, grouped positional conv1d."""
    def __init__(s, d=32):
        super().__init__()
        s.c0 = nn.Conv1d(1, d, 10, 5, bias=False); s.gn = nn.GroupNorm(d, d)
        s.c1 = nn.Conv1d(d, d, 3, 2, bias=False); s.c2 = nn.Conv1d(d, d, 2, 2, bias=False)
        s.ln = nn.LayerNorm(d); s.pos = nn.Conv1d(d, d, 9, padding=4, groups=4); s.fc = nn.Linear(d, 8)
    def forward(s, wav):
        x = F.gelu(s.gn(s.c0(wav.unsqueeze(1))))
        x = F.gelu(s.c2(F.gelu(s.c1(x))))
        x = s.ln(x.transpose(1, 2))
        x = x + F.gelu(s.pos(x.transpose(1, 2))).transpose(1, 2)
        return s.fc(x)

class DeepLabIsh(nn.Module):
    """ASPP: dilated 3x3 branches + image pooling branch upsampled bilinear to the feature size."""
    def __init__(s):
        super().__init__()
        s.back = nn.Sequential(cbr(3, 16, 3, 2), cbr(16, 32, 3, 2))
        s.b0 = cbr(32, 16, 1); s.b1 = nn.Sequential(nn.Conv2d(32, 16, 3, padding=2, dilation=2), nn.ReLU())
        s.b2 = nn.Sequential(nn.Conv2d(32, 16, 3, padding=4, dilation=4), nn.ReLU())
        s.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(32, 16, 1), nn.ReLU())
        s.proj = cbr(64, 16, 1); s.cls = nn.Conv2d(16, 5, 1)
    def forward(s, x):
        f = s.back(x)
        p = F.interpolate(s.pool(f), size=f.shape[-2:], mode="bilinear", align_corners=False)
        y = s.cls(s.proj(torch.cat([s.b0(f), s.b1(f), s.b2(f), p], 1)))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)

class ArcFaceIsh(nn.Module):
    """PReLU body, BatchNorm1d on the embedding, L2-normalized output (F.normalize)."""
    def __init__(s):
        super().__init__()
        s.f = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.PReLU(16),
                            nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.PReLU(32))
        s.fc = nn.Linear(32 * 8 * 8, 64); s.bn = nn.BatchNorm1d(64)
    def forward(s, x): return F.normalize(s.bn(s.fc(s.f(x).flatten(1))), dim=1)

class CBAM(nn.Module):
    """Channel attention (avg + max MLP) and spatial attention (channel mean/max, 7x7 conv)."""
    def __init__(s, c=32):
        super().__init__()
        s.stem = cbr(3, c, 3, 2); s.mlp = nn.Sequential(nn.Conv2d(c, c // 4, 1), nn.ReLU(), nn.Conv2d(c // 4, c, 1))
        s.sp = nn.Conv2d(2, 1, 7, padding=3); s.fc = nn.Linear(c, 10)
    def forward(s, x):
        x = s.stem(x)
        x = x * torch.sigmoid(s.mlp(F.adaptive_avg_pool2d(x, 1)) + s.mlp(F.adaptive_max_pool2d(x, 1)))
        a = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        x = x * torch.sigmoid(s.sp(a))
        return s.fc(x.mean((2, 3)))

class CausalDecoder(nn.Module):
    """GPT-style block: causal mask (constant triu) through masked_fill, tied output embedding."""
    def __init__(s, vocab=90, d=32, heads=4, seq=10):
        super().__init__()
        s.emb = nn.Embedding(vocab, d); s.pos = nn.Parameter(torch.randn(1, seq, d) * 0.02)
        s.ln1 = nn.LayerNorm(d); s.attn = nn.Linear(d, 3 * d); s.proj = nn.Linear(d, d); s.ln2 = nn.LayerNorm(d)
        s.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"), nn.Linear(4 * d, d)); s.lnf = nn.LayerNorm(d)
        s.h = heads; s.register_buffer("causal", torch.triu(torch.ones(seq, seq, dtype=torch.bool), 1))
    def forward(s, ids):
        n, t = ids.shape; d = s.emb.embedding_dim
        x = s.emb(ids) + s.pos[:, :t]
        q, k, v = s.attn(s.ln1(x)).split(d, 2)
        sp = lambda y: y.view(n, t, s.h, d // s.h).transpose(1, 2)
        a = (sp(q) @ sp(k).transpose(-2, -1)) * (d // s.h) ** -0.5
        a = a.masked_fill(s.causal[:t, :t], float("-inf")).softmax(-1)
        x = x + s.proj((a @ sp(v)).transpose(1, 2).reshape(n, t, d))
        x = x + s.mlp(s.ln2(x))
        return s.lnf(x) @ s.emb.weight.t()

# name -> (constructor, input shape(s), input dtype)
ZOO = {
    "resnet18ish": (ResNet, (1, 3, 64, 64), "float32"),
    "mobilenetv2": (MobileNetV2, (1, 3, 64, 64), "float32"),
    "mobilenetv3": (MobileNetV3, (1, 3, 64, 64), "float32"),
    "efficientnet": (EfficientNet, (1, 3, 64, 64), "float32"),
    "shufflenetv2": (ShuffleNetV2, (1, 3, 64, 64), "float32"),
    "squeezenet": (SqueezeNet, (1, 3, 64, 64), "float32"),
    "densenet": (DenseNet, (1, 3, 32, 32), "float32"),
    "unet": (UNet, (1, 3, 32, 32), "float32"),
    "yolo_head": (YoloHead, (1, 3, 64, 64), "float32"),
    "vit_tiny": (ViT, (1, 3, 32, 32), "float32"),
    "text_encoder": (TextEncoder, (1, 16), "int64"),
    "kws_conv1d": (KWS, (1, 40, 49), "float32"),
    "lstm": (LSTMNet, (1, 12, 20), "float32"),
    "bilstm": (lambda: LSTMNet(bi=True, layers=1), (1, 12, 20), "float32"),
    "gru": (GRUNet, (1, 12, 20), "float32"),
    "crnn": (CRNN, (1, 1, 32, 64), "float32"),
    "misc_ops": (MiscOps, (1, 3, 16, 16), "float32"),
    "conv3d": (Conv3DNet, (1, 3, 4, 8, 8), "float32"),
    "bicubic": (Bicubic, (1, 3, 8, 8), "float32"),
    "yolov8ish": (YoloV8ish, (1, 3, 64, 64), "float32"),
    "convnext": (ConvNeXt, (1, 3, 32, 32), "float32"),
    "swin": (Swin, (1, 3, 32, 32), "float32"),
    "bert_ish": (BertIsh, [(1, 12), (1, 12)], "int64"),
    "wav2vec_ish": (Wav2VecIsh, (1, 400), "float32"),
    "deeplab_aspp": (DeepLabIsh, (1, 3, 32, 32), "float32"),
    "arcface_ish": (ArcFaceIsh, (1, 3, 32, 32), "float32"),
    "cbam": (CBAM, (1, 3, 32, 32), "float32"),
    "causal_decoder": (CausalDecoder, (1, 10), "int64"),
}

def export(out_dir, only, opsets):
    import pathlib, json
    torch.manual_seed(0)
    done = {}
    for name, (ctor, shape, dtype) in ZOO.items():
        if only and name not in only:
            continue
        m = ctor().eval()
        with torch.no_grad():  # non-trivial BatchNorm statistics
            for mod in m.modules():
                if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    mod.running_mean.uniform_(-0.2, 0.2); mod.running_var.uniform_(0.5, 2.0)
                    mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.2, 0.2)
        shapes = shape if isinstance(shape, list) else [shape]
        xs = tuple(torch.randint(1, 2, sh) if i > 0 and dtype == "int64" else
                   torch.randint(1, 80, sh) if dtype == "int64" else torch.randn(sh) for i, sh in enumerate(shapes))
        names = ["x"] + [f"x{i}" for i in range(1, len(shapes))]
        for opset in opsets:
            path = pathlib.Path(out_dir) / f"{name}_op{opset}.onnx"
            try:
                torch.onnx.export(m, xs, str(path), opset_version=opset, dynamo=False, input_names=names)
                done[path.name] = {"arch": name, "opset": opset, "shapes": [list(sh) for sh in shapes],
                                   "names": names, "dtype": dtype}
            except Exception as e:  # noqa: BLE001
                done[path.name] = {"arch": name, "opset": opset, "export_error": f"{type(e).__name__}: {e}"[:300]}
    (pathlib.Path(out_dir) / "index.json").write_text(json.dumps(done, indent=1))
'''


def export_models(python: str, work: Path, only: list[str], opsets) -> dict | None:
    code = ARCHS + f"\nexport({str(work)!r}, {only!r}, {list(opsets)!r})\n"
    probe = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"arch_corpus: torch is not importable by {python}; pass --torch-python PY (an interpreter "
              "with torch, e.g. a throwaway venv). Skipping.")
        return None
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-3000:])
        raise SystemExit("arch_corpus: export failed")
    return json.loads((work / "index.json").read_text())


def calibration(work: Path, name: str, info: dict, n: int = 24) -> Path:
    """Random samples: standard normal floats; token ids in [1, 80) (second int input: a 0/1 mask)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for i, (nm, shape) in enumerate(zip(info["names"], info["shapes"])):
        if info["dtype"] == "int64":
            arrays[nm] = (rng.integers(0, 2, (n, *shape[1:])) if i else rng.integers(1, 80, (n, *shape[1:]))).astype(np.int64)
        else:
            arrays[nm] = rng.standard_normal((n, *shape[1:])).astype(np.float32)
    if len(arrays) == 1:
        path = work / f"{name}.calib.npy"
        np.save(path, next(iter(arrays.values())))
    else:
        path = work / f"{name}.calib.npz"
        np.savez(path, **arrays)
    return path


def build(work: Path, model: Path, info: dict, precision: str) -> dict:
    out = work / f"out_{model.stem}_{precision}"
    cmd = [sys.executable, "-m", "deploykit.cli.app", "build", str(model), "--target", "rpi4",
           "--precision", precision, "-o", str(out), "--force"]
    if precision == "int8":
        cmd += ["--calibration", str(calibration(work, model.stem, info))]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    row: dict = {"seconds": round(time.perf_counter() - t, 1)}
    if proc.returncode != 0:
        err = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        tail = proc.stderr.strip().splitlines()[-1:] or ["?"]
        row.update(status="error", why=(err[-1] if err else tail[0])[:400])
        return row
    manifest = json.loads((out / "manifest.json").read_text())
    report = json.loads((out / "report.json").read_text())
    v = manifest["verification"]
    outs = v.get("outputs", {})
    row["status"] = v["status"]
    row["rel_err"] = max((m.get("rel_max_abs_error", 0) for m in outs.values()), default=None)
    row["cosine"] = min((m.get("cosine", 1) for m in outs.values()), default=None)
    row["problems"] = v.get("problems", [])
    br = report.get("backend_report", {})
    row["transposes"] = br.get("transposes")
    row["xnnpack"] = br.get("xnnpack")
    if precision == "int8":
        q = br.get("int8", {})
        row["int8_ops"] = q.get("int8_ops")
        row["float_ops"] = q.get("float_ops")
    return row


def cli_module_ok() -> bool:
    return subprocess.run([sys.executable, "-c", "import deploykit.cli.app"], capture_output=True).returncode == 0


def write_table(results: dict, path: Path) -> None:
    lines = ["# tflite generality corpus (`python benchmarks/tflite/arch_corpus.py`)", "",
             "Architectures written in plain torch.nn (random init, small widths; generator in "
             "`benchmarks/tflite/arch_corpus.py`), exported with `torch.onnx.export(dynamo=False)` at opsets "
             "13 and 17, built with `deploykit build M --target rpi4 --precision P` through the CLI (int8: "
             "24 random-normal calibration samples). Verification = the generated runner in LiteRT/XNNPACK vs "
             "fp32 onnxruntime (fp32 rel. max abs error <= 1e-4, fp16 <= 1e-2, int8 cosine >= 0.95).", "",
             "| model | opset | " + " | ".join(PRECISIONS) + " |", "|---|---|" + "---|" * len(PRECISIONS)]
    for name, entry in sorted(results.items()):
        if "export_error" in entry["info"]:
            lines.append(f"| {entry['info']['arch']} | {entry['info']['opset']} | export failed: "
                         f"{entry['info']['export_error'][:80]} |" + " |" * (len(PRECISIONS) - 1))
            continue
        cells = []
        for p in PRECISIONS:
            r = entry["builds"].get(p)
            if r is None:
                cells.append("-")
            elif r["status"] == "error":
                cells.append("FAIL: " + r["why"].replace("|", "/")[:160])
            else:
                cell = f"{r['status']} (err {r['rel_err']:.2g}, cos {r['cosine']:.4f})" if r["rel_err"] is not None else r["status"]
                if p == "int8" and r.get("float_ops"):
                    cell += ", float: " + ", ".join(f"{k}×{v}" for k, v in r["float_ops"].items())
                if r.get("transposes"):
                    cell += f", {r['transposes']} TRANSPOSE"
                x = r.get("xnnpack") or {}
                if x.get("undelegated"):
                    cell += (f", XNNPACK {x['partitions']} partitions, built-in: "
                             + ", ".join(f"{k}×{v}" for k, v in x["undelegated"].items()))
                cells.append(cell)
        lines.append(f"| {entry['info']['arch']} | {entry['info']['opset']} | " + " | ".join(cells) + " |")
    n = sum(1 for e in results.values() for r in e["builds"].values())
    ok = sum(1 for e in results.values() for r in e["builds"].values() if r["status"] == "passed")
    whole = sum(1 for e in results.values() for r in e["builds"].values()
                if r["status"] != "error" and r.get("xnnpack") and not r["xnnpack"].get("undelegated"))
    lines += ["", f"**{ok} / {n} builds built and passed verification.** {whole} / {n} run every op in XNNPACK "
              "(one partition; the others list the ops LiteRT's built-in kernels run).", ""]
    path.write_text("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--torch-python", default=sys.executable, help="interpreter with torch for the export step")
    ap.add_argument("--work", type=Path, default=None, help="folder for exported models and bundles (default: temp)")
    ap.add_argument("--only", default="", help="comma-separated architecture names")
    ap.add_argument("--precisions", default=",".join(PRECISIONS))
    ap.add_argument("--opsets", default=",".join(map(str, OPSETS)))
    ap.add_argument("--out", type=Path, default=RESULTS / "tflite_arch_corpus.md")
    args = ap.parse_args(argv)
    if not cli_module_ok():
        print("arch_corpus: deploykit is not importable by this interpreter")
        return 1
    work = args.work or Path(tempfile.mkdtemp(prefix="dk_arch_corpus_"))
    work.mkdir(parents=True, exist_ok=True)
    only = [s for s in args.only.split(",") if s]
    index = export_models(os.path.expanduser(args.torch_python), work, only, [int(o) for o in args.opsets.split(",")])
    if index is None:
        return 0
    precisions = [p for p in args.precisions.split(",") if p]
    results = {}
    for fname, info in index.items():
        entry = {"info": info, "builds": {}}
        results[fname] = entry
        if "export_error" in info:
            print(f"{fname}: export failed: {info['export_error'][:200]}")
            continue
        for p in precisions:
            r = build(work, work / fname, info, p)
            entry["builds"][p] = r
            print(f"{fname} {p}: {r['status']} {r.get('rel_err', '')} {r.get('why', '')} {r.get('problems', '')}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_table(results, args.out)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1, sort_keys=True))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
