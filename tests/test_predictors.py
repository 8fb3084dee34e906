"""Predictors of the gain against closed forms on cases small enough to compute by hand."""

from __future__ import annotations

import numpy as np
import pytest

from w2s_hf.decomposition.predictors import (
    capa,
    effective_rank,
    kernel_projection,
    predictor_block,
    principal_components,
    residual_correlation,
    subspace_overlap,
)

N = 40


def _basis(n: int = N, k: int = 4, seed: int = 0) -> np.ndarray:
    """k orthonormal, centred vectors of R^n: functions on n rows with mean 0."""
    raw = np.random.default_rng(seed).normal(size=(n, k))
    q, _ = np.linalg.qr(raw - raw.mean(axis=0))
    return q


def _weights(norms: list[float], lam: float, n: int = N) -> list[float]:
    """mu / (mu + beta) by hand: mu = norm^2 / n, beta = lam * tr(K) / n, tr(K) = sum of mu."""
    mu = [s * s / n for s in norms]
    beta = lam * sum(mu) / n
    return [m / (m + beta) for m in mu]


@pytest.mark.parametrize("lam", [0.1, 2.0])
def test_kernel_projection_of_labels_lying_in_one_span(lam):
    q = _basis()
    weak, strong = np.column_stack([3 * q[:, 0], 1 * q[:, 1]]), np.column_stack([2 * q[:, 0], 1 * q[:, 2]])
    b1, b2 = _weights([3, 1], lam)
    a1, a3 = _weights([2, 1], lam)
    wpc, spc = principal_components(weak), principal_components(strong)
    labels = np.column_stack([q[:, 2], q[:, 0], q[:, 1], 5.0 + q[:, 3]])
    out = kernel_projection(wpc, spc, labels, lam)
    # q3: outside the weak span, inside the strong one: P_s keeps a3 of it
    # q1: in both: (I - P_w) keeps 1 - b1, then P_s keeps a1 of that
    # q2: in the weak span only, q4 (plus a constant): in neither -> nothing reaches the strong span
    expected = [a3 ** 2 / N, (a1 * (1 - b1)) ** 2 / N, 0.0, 0.0]
    np.testing.assert_allclose(out["per_column"], expected, atol=1e-15)
    np.testing.assert_allclose(out["share"], [a3 ** 2, (a1 * (1 - b1)) ** 2, 0.0, 0.0], atol=1e-12)
    # P_s (I - P_w) = a1 (1 - b1) q1 q1^T + a3 q3 q3^T: its norm is the larger factor
    assert out["operator_norm"] == pytest.approx(max(a1 * (1 - b1), a3), rel=1e-12)
    assert b2 < 1  # (the weak second direction is shrunk too, and still never reaches the strong span)


@pytest.mark.parametrize("strong_dim", [9, 45])  # fewer and more features than rows
def test_operator_norm_matches_the_n_by_n_matrices(strong_dim):
    rng = np.random.default_rng(3)
    weak, strong = rng.normal(size=(30, 5)) @ rng.normal(size=(5, 7)), rng.normal(size=(30, strong_dim))
    lam = 0.3

    def projector(X):
        Xc = X - X.mean(axis=0)
        K = Xc @ Xc.T / len(X)
        return K @ np.linalg.inv(K + lam * np.trace(K) / len(X) * np.eye(len(X)))

    Pw, Ps = projector(weak), projector(strong)
    y = rng.normal(size=(30, 2))
    out = kernel_projection(principal_components(weak), principal_components(strong), y, lam)
    assert out["operator_norm"] == pytest.approx(np.linalg.norm(Ps @ (np.eye(30) - Pw), 2), rel=1e-10)
    np.testing.assert_allclose(out["per_column"], ((Ps @ (np.eye(30) - Pw) @ y) ** 2).sum(axis=0) / 30, rtol=1e-10)
    kept = weak.copy()
    principal_components(weak)  # centres its own float64 copy: the caller's features are left as they were
    np.testing.assert_array_equal(weak, kept)


def test_kernel_projection_ignores_scale_rotation_and_offset_of_the_features():
    rng = np.random.default_rng(4)
    weak, strong, y = rng.normal(size=(25, 4)), rng.normal(size=(25, 6)), rng.normal(size=(25, 1))
    rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    base = kernel_projection(principal_components(weak), principal_components(strong), y)
    moved = kernel_projection(principal_components(7 * weak + 3), principal_components(strong @ rotation - 1), y)
    np.testing.assert_allclose(moved["per_column"], base["per_column"], rtol=1e-9)
    assert moved["operator_norm"] == pytest.approx(base["operator_norm"], rel=1e-9)


@pytest.mark.parametrize("theta", [0.0, np.pi / 6, np.pi / 3, np.pi / 2])
def test_principal_angles_of_two_known_planes(theta):
    q = _basis()
    weak = np.column_stack([q[:, 0], q[:, 1]])
    strong = np.column_stack([q[:, 0], np.cos(theta) * q[:, 1] + np.sin(theta) * q[:, 2]])
    wpc, spc = principal_components(weak), principal_components(strong)
    out = subspace_overlap(wpc, spc, share=0.99)
    assert subspace_overlap(wpc, spc, share=0.99, cross=spc.cross(wpc)) == out  # a precomputed cross Gram
    assert out["effective_rank_weak"] == out["effective_rank_strong"] == 2
    np.testing.assert_allclose(sorted(out["principal_angles_deg"]), [0.0, np.degrees(theta)], atol=1e-6)
    assert out["overlap"] == pytest.approx((1 + np.cos(theta) ** 2) / 2, abs=1e-12)
    assert out["discrepancy"] == pytest.approx(np.sin(theta) ** 2, abs=1e-12)


def test_effective_rank_counts_components_up_to_the_variance_share():
    assert effective_rank(np.array([9.0, 1.0]), 0.9) == 1  # exactly 90% in the first
    assert effective_rank(np.array([8.0, 1.0, 1.0]), 0.9) == 2
    assert effective_rank(np.array([1.0, 1.0, 1.0, 1.0]), 0.9) == 4
    q = _basis()
    # a weak span of rank 1 (90% share) inside a strong span: overlap 1, nothing discrepant
    weak = np.column_stack([3 * q[:, 0], q[:, 1]])
    out = subspace_overlap(principal_components(weak), principal_components(q[:, :3]), share=0.9)
    assert (out["effective_rank_weak"], out["effective_rank_strong"]) == (1, 3)
    assert out["overlap"] == pytest.approx(1.0) and out["discrepancy"] == pytest.approx(0.0, abs=1e-12)


def test_capa_by_hand():
    p_a = np.array([[0.8, 0.2], [0.4, 0.6]])
    p_b = np.array([[0.6, 0.4], [0.5, 0.5]])
    out = capa(p_a, p_b, np.array([0, 1]))
    # observed = ((.8*.6 + .2*.4) + (.4*.5 + .6*.5)) / 2; p on the gold class: .7 and .55
    assert out["observed"] == pytest.approx(0.53)
    assert out["expected"] == pytest.approx(0.7 * 0.55 + 0.3 * 0.45)
    assert out["kappa"] == pytest.approx((0.53 - 0.52) / 0.48)
    assert set(capa(p_a, p_b)) == {"observed"}  # without labels only the label-free part


def test_capa_three_classes_spreads_wrong_mass_over_the_other_two():
    p = np.array([[0.5, 0.25, 0.25]])
    out = capa(p, p, np.array([0]))
    assert out["observed"] == pytest.approx(0.375)
    assert out["expected"] == pytest.approx(0.25 + 0.25 / 2)
    assert out["kappa"] == pytest.approx(0.0)  # a model agrees with itself only by chance when it is this unsure
    sure = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert capa(sure, sure, np.array([0, 1]))["kappa"] is None  # expected agreement 1: no room to adjust


def test_residual_correlation_is_the_correlation_of_errors():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    e = np.array([1.0, -1.0, 1.0, -1.0])
    f = np.array([1.0, 1.0, -1.0, -1.0])  # orthogonal to e, both mean 0
    out = residual_correlation(np.column_stack([y + e, y + e, y + e]), np.column_stack([y + e, y - e, y + f]),
                               np.column_stack([y, y, y]))
    np.testing.assert_allclose(out["kappa"], [1.0, -1.0, 0.0], atol=1e-12)
    # observed: a = y + e, b = y + f: cov = var(y) + cov(y, f) + cov(e, y) + 0 over n
    a, b = y + e, y + f
    assert out["observed"][2] == pytest.approx(np.corrcoef(a, b)[0, 1])
    assert np.isnan(residual_correlation(y, np.ones(4), y)["kappa"][0])  # a constant model: no correlation


def _block(gold, classification=False, **kw):
    rng = np.random.default_rng(7)
    q = _basis(n=30, k=5, seed=1)
    pred = {s: rng.random((20, 3 if classification else 2)) for s in ("w2s_train", "val", "test")}
    if classification:
        pred = {s: p / p.sum(axis=1, keepdims=True) for s, p in pred.items()}
    ceiling = {s: p[::-1].copy() for s, p in pred.items()}
    targets = ["y"] if classification else ["a", "b"]
    return predictor_block(weak_features=q[:, :3], strong_features=q[:, 1:], weak_labels=q[:, :2],
                           weak_pred=pred, ceiling_pred=ceiling, gold=gold,
                           misfit={t: 0.1 * (i + 1) for i, t in enumerate(targets)}, targets=targets,
                           classification=classification, **kw)


@pytest.mark.parametrize("classification", [False, True])
def test_block_reads_gold_labels_of_val_only(classification):
    rng = np.random.default_rng(8)

    def gold():
        return {s: (rng.integers(0, 3, (20, 1)) if classification else rng.normal(size=(20, 2)))
                for s in ("w2s_train", "val", "test")}

    g = gold()
    base = _block(g, classification)
    poisoned = _block({**gold(), "val": g["val"]}, classification)  # every split but val changed
    assert poisoned["values"] == base["values"]
    moved = _block({**g, "val": gold()["val"]}, classification)
    changed = {p for p in base["values"] if moved["values"][p] != base["values"][p]}
    assert changed == {"similarity"}  # only the gold-label part of the similarity reads val's labels
    assert set(base["values"]) == set(base["directions"]) == set(base["reads"])
    assert all(v is not None for v in base["values"].values())
    assert base["per_target"][next(iter(base["per_target"]))]["misfit"] == pytest.approx(0.1)


def test_block_refuses_gold_labels_from_the_evaluated_split():
    with pytest.raises(ValueError, match="gold_split and eval_split"):
        _block({}, gold_split="test")
