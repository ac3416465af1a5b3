"""The adversarial corpus: deterministic inputs that break naive loss code.

Softmax rows (K = 2, 7 and 1000): logits of +-1e4, spreads of 1e4 within a
row, all-equal rows (small and huge), rows differing in the 15th digit,
confident rows whose top probability is within 1e-15 (and much less) of 1,
rows whose other exponentials are subnormal (gaps of 720 and 740),
+-inf entries, plus seeded random rows; each row is paired with the label of
its largest, smallest and a middle logit.  Element-wise pairs cover the
logistic's saturation points (|z| of 17, 36, 37, 40, 709, 745, 800, 1e4,
1e300, inf) with hard and soft targets, and Huber's regions and kink.
"""

from __future__ import annotations

import numpy as np

INF = np.inf


def _softmax_rows(k: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    ones = np.ones(k)
    alt = np.where(np.arange(k) % 2 == 0, 1e4, -1e4)
    rows = [
        ("tied", 3.0 * ones),
        ("tied_1e4", 1e4 * ones),
        ("tied_minus_1e4", -1e4 * ones),
        ("alternating_1e4", alt),
        ("spread_1e4", np.linspace(-1e4, 0.0, k)),
        ("one_at_1e4", np.where(np.arange(k) == k // 2, 1e4, 0.0)),
        ("digit_15", 1.0 + 1e-15 * np.arange(k)),
        ("tiny_differences", 1e-17 * np.arange(k)),
        ("confident_34", np.where(np.arange(k) == 0, 34.5 + np.log(k), 0.0)),  # 1 - p ~ 1e-15
        ("confident_40", np.where(np.arange(k) == 0, 40.0 + np.log(k), 0.0)),
        ("confident_700", np.where(np.arange(k) == k - 1, 700.0, -5.0)),
        # the others' exponentials are subnormal: exp(-720) and exp(-740)
        ("confident_720", np.where(np.arange(k) == 0, 720.0, 0.0)),
        ("confident_740", np.where(np.arange(k) == 0, 740.0, 0.0)),
        ("near_tie_top", np.concatenate(([5.0, 5.0 - 1e-13], rng.normal(size=k - 2)))),
        ("random_3", 3.0 * rng.normal(size=k)),
        ("random_300", 300.0 * rng.normal(size=k)),
        ("plus_inf", np.where(np.arange(k) == 1, INF, rng.normal(size=k))),
        ("two_plus_inf", np.where(np.arange(k) < 2, INF, rng.normal(size=k))),
        ("minus_inf", np.where(np.arange(k) == 0, -INF, rng.normal(size=k))),
        ("all_minus_inf", -INF * ones),
    ]
    return rows


def softmax_corpus(k: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(names, raw (m, k), labels (m,))`` with three labels per row."""
    rng = np.random.default_rng(seed + k)
    names, raws, labels = [], [], []
    for name, row in _softmax_rows(k, rng):
        finite = np.where(np.isfinite(row), row, np.nan)
        order = np.argsort(np.nan_to_num(finite, nan=0.0) + np.where(row == INF, 1e308, 0.0)
                           - np.where(row == -INF, 1e308, 0.0), kind="stable")
        for tag, y in (("top", order[-1]), ("bottom", order[0]), ("middle", order[k // 2])):
            names.append(f"{name}/{tag}")
            raws.append(row)
            labels.append(int(y))
    return names, np.array(raws), np.array(labels)


LOGISTIC_POINTS = np.array(
    [0.0, 1e-300, 1e-20, 1e-8, 0.5, 1.0, 5.0, 17.0, 30.0, 36.04, 37.0, 40.0, 100.0,
     700.0, 709.0, 745.0, 800.0, 1e4, 1e300, INF]
)
LOGITS = np.concatenate([LOGISTIC_POINTS, -LOGISTIC_POINTS[1:]])
HARD_TARGETS = np.array([0.0, 1.0])
SOFT_TARGETS = np.array([1e-10, 0.3, 0.5, 0.9, 1.0 - 1e-10])


def logistic_pairs(soft: bool) -> tuple[np.ndarray, np.ndarray]:
    """All (target, logit) pairs, as two flat arrays."""
    targets = SOFT_TARGETS if soft else HARD_TARGETS
    y, z = np.meshgrid(targets, LOGITS, indexing="ij")
    return y.ravel(), z.ravel()


def regression_pairs(delta: float) -> tuple[np.ndarray, np.ndarray]:
    """(target, prediction) pairs around Huber's kink and far beyond it."""
    residuals = np.array([0.0, 1e-300, 1e-12, 1e-6, 0.3, 1.0, 1e3, 1e10, 1e150, 1e300])
    residuals = np.concatenate([residuals, -residuals[1:], [delta, -delta, np.nextafter(delta, 2 * delta)]])
    targets = np.array([0.0, 1.5, -1e4, 1e10])
    y, r = np.meshgrid(targets, residuals, indexing="ij")
    z = y + r
    extra_y = np.array([0.0, 3.0])
    return np.concatenate([y.ravel(), extra_y, extra_y]), np.concatenate([z.ravel(), [INF, INF], [-INF, -INF]])
