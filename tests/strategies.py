"""Hypothesis strategies: a loss with random options and a matching random problem."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import nbloss

SOFTMAX = ("cross_entropy", "cross_entropy_soft", "focal")
ELEMENTWISE = ("bce", "binary_focal", "huber", "pseudo_huber", "squared_error")
ALL_KINDS = SOFTMAX + ELEMENTWISE


@st.composite
def problems(draw, kinds=ALL_KINDS, logit_scale=20.0, dtype=np.float64):
    """``(loss, y_true, raw, sample_weight)`` with random shapes, options and weights."""
    kind = draw(st.sampled_from(kinds))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(1, 9))
    weighted = draw(st.booleans())
    sw = rng.uniform(0.0, 3.0, size=n) if weighted else None
    if kind in SOFTMAX:
        k = draw(st.integers(2, 6))
        raw = rng.uniform(-logit_scale, logit_scale, size=(n, k))
        labels = rng.integers(0, k, size=n)
        ignore = draw(st.sampled_from([None, 0, -100]))
        if kind == "focal":
            alpha = draw(st.sampled_from([None, "random"]))
            loss = nbloss.FocalLoss(gamma=draw(st.floats(0.0, 4.0)),
                                    alpha=None if alpha is None else rng.uniform(0.1, 2.0, size=k),
                                    ignore_index=ignore)
            y = labels
        else:
            cw = draw(st.sampled_from([None, "random", "balanced"]))
            class_weight = rng.uniform(0.1, 2.0, size=k) if cw == "random" else cw
            smoothing = draw(st.sampled_from([0.0, 0.1, 0.35]))
            if kind == "cross_entropy_soft":
                loss = nbloss.CrossEntropy(class_weight=None if cw == "balanced" else class_weight,
                                           label_smoothing=smoothing)
                y = rng.dirichlet(np.ones(k), size=n)
            else:
                loss = nbloss.CrossEntropy(class_weight=class_weight, label_smoothing=smoothing,
                                           ignore_index=ignore)
                y = labels
    else:
        two_d = draw(st.booleans())
        shape = (n, draw(st.integers(1, 4))) if two_d else (n,)
        raw = rng.uniform(-logit_scale, logit_scale, size=shape)
        if kind in ("bce", "binary_focal"):
            soft = draw(st.booleans())
            y = rng.uniform(0, 1, size=shape) if soft else (rng.uniform(size=shape) < 0.5).astype(float)
            if kind == "bce":
                pw = draw(st.sampled_from([None, "scalar", "vector"]))
                pos_weight = (None if pw is None else float(rng.uniform(0.2, 4.0)) if pw == "scalar"
                              else rng.uniform(0.2, 4.0, size=shape[1] if two_d else 1))
                if pw == "vector" and not two_d:
                    pos_weight = float(pos_weight[0])
                loss = nbloss.BinaryCrossEntropy(pos_weight=pos_weight)
            else:
                loss = nbloss.BinaryFocalLoss(gamma=draw(st.floats(0.0, 4.0)),
                                              alpha=draw(st.sampled_from([None, 0.25, 0.8])))
        else:
            y = rng.normal(scale=logit_scale / 4, size=shape)
            delta = draw(st.floats(0.1, 3.0))
            loss = {"huber": nbloss.HuberLoss(delta=delta), "pseudo_huber": nbloss.PseudoHuberLoss(delta=delta),
                    "squared_error": nbloss.SquaredError()}[kind]
    return loss, y, raw.astype(dtype), sw
