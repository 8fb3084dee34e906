"""KL divergences for classification (Mulgund & Pabbaraju, ICML 2025), registered in `w2s_hf.divergences.DIVERGENCES`.

`divergence="kl"` takes predictions as probabilities, `"kl_logits"` as logits: binary as an (n,)
array (probability or logit of class 1), multiclass as (n, C). Labels are class indices (n,) or
soft distributions of the predictions' shape (for binary, an (n,) probability of class 1 that is not
all 0/1 counts as soft). Everything is float64; log-probabilities come from a log-sum-exp and
probabilities are clipped to [1e-12, 1], so p = 0 or 1 gives no NaN.

With `D(t, p) = KL(t || p)`: errors are D(y, prediction), which for one-hot (index) labels *is* the
cross-entropy; for soft labels the KL is reported (cross-entropy minus the labels' entropy, so every
difference of errors, the gain among them, is the same for both). The misfit is D(w2s, weak) =
KL(student || weak), the direction of the theorem. `extras` adds what practitioners also read:
`misfit_forward` = KL(weak || student) and the accuracies. The residual with the ceiling standing in
for the truth (formerly `residual_ceiling_as_truth` here) is `proxy_residual` of the diagnostics
(`w2s_hf.decomposition.diagnostics`), one mechanism for every divergence.
"""

from __future__ import annotations

import numpy as np

from ..arrays import SUM_TOL, check_labels  # noqa: F401  (check_labels: part of the KL checks)

_EPS = 1e-12


def log_probs(pred: np.ndarray, *, logits: bool) -> np.ndarray:
    """(n, C) float64 log-probabilities of (n, 1) binary or (n, C) predictions."""
    pred = np.asarray(pred, dtype=np.float64)
    if pred.shape[1] == 1:  # binary: class 1's probability or logit
        if logits:
            z = pred[:, 0]
            # log sigmoid(z) and log sigmoid(-z), stably
            return np.stack([-np.logaddexp(0.0, z), -np.logaddexp(0.0, -z)], axis=1)
        p = np.clip(pred[:, 0], _EPS, 1.0 - _EPS)
        return np.log(np.stack([1.0 - p, p], axis=1))
    if logits:
        shifted = pred - pred.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return np.log(np.clip(pred, _EPS, 1.0))


def _target_probs(target: np.ndarray, n_classes: int, *, logits: bool, is_pred: bool) -> np.ndarray:
    """(n, C) distribution of a target: another model's predictions, class indices or soft labels."""
    if is_pred:
        return np.exp(log_probs(target, logits=logits))
    if target.shape[1] == 1:
        col = target[:, 0]
        if np.all(col == np.round(col)):  # class indices
            return np.eye(n_classes)[col.astype(np.int64)]
        return np.stack([1.0 - col, col], axis=1)  # binary soft label: probability of class 1
    return np.clip(target, 0.0, 1.0)


def label_probs(y: np.ndarray, pred: np.ndarray, *, logits: bool) -> np.ndarray:
    """(n, C) distribution of gold labels (class indices or soft labels), C taken from `pred`."""
    return _target_probs(y, 2 if pred.shape[1] == 1 else pred.shape[1], logits=logits, is_pred=False)


def clip_probs(p: np.ndarray) -> np.ndarray:
    """Probabilities kept >= 1e-12: positive weights for the Cauchy-Schwarz bounds of the residual split."""
    return np.clip(p, _EPS, 1.0)


def kl_loss(pred: np.ndarray, target: np.ndarray, *, logits: bool, target_is_pred: bool) -> np.ndarray:
    """(n, 1) KL(target || pred) per example."""
    log_p = log_probs(pred, logits=logits)
    t = _target_probs(target, log_p.shape[1], logits=logits, is_pred=target_is_pred)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_t = np.where(t > 0, np.log(np.clip(t, _EPS, 1.0)), 0.0)
    return (t * (log_t - log_p)).sum(axis=1, keepdims=True)


def check_predictions(pred: np.ndarray, name: str, *, logits: bool) -> None:
    if logits:
        return
    if np.any(pred < 0) or np.any(pred > 1):
        raise ValueError(f"{name} holds values outside [0, 1]; pass probabilities, or use divergence='kl_logits' "
                         "for logits")
    if pred.shape[1] > 1:
        sums = pred.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1.0) > SUM_TOL)
        if len(bad):
            raise ValueError(f"{name} rows must sum to 1 (probabilities); row {bad[0]} sums to "
                             f"{sums[bad[0]]:.6g} ({len(bad)} rows in all); pass divergence='kl_logits' for logits")


def extras(y: np.ndarray, weak: np.ndarray, w2s: np.ndarray, ceiling: np.ndarray | None, *,
           logits: bool) -> dict[str, np.ndarray | None]:
    """Per-example misfit_forward and accuracies ((n,) arrays; the ceiling's None without a ceiling).
    `decompose` averages them and bootstraps them with the same resamples as the rest."""
    kl = lambda p, t: kl_loss(p, t, logits=logits, target_is_pred=True)[:, 0]  # noqa: E731  KL(t || p)

    def correct(pred: np.ndarray) -> np.ndarray:
        log_p = log_probs(pred, logits=logits)
        truth = _target_probs(y, log_p.shape[1], logits=logits, is_pred=False).argmax(axis=1)
        return (log_p.argmax(axis=1) == truth).astype(np.float64)

    out: dict[str, np.ndarray | None] = {
        "misfit_forward": kl(w2s, weak),  # KL(weak || w2s)
        "weak_accuracy": correct(weak),
        "w2s_accuracy": correct(w2s),
        "ceiling_accuracy": None if ceiling is None else correct(ceiling),
    }
    return out
