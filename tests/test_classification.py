"""The KL decomposition for classification (Mulgund & Pabbaraju, ICML 2025): values, directions, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from w2s_hf.decomposition.core import decompose


def _kl(t, p):
    return sum(ti * math.log(ti / pi) for ti, pi in zip(t, p) if ti > 0)


def test_three_class_values_match_a_direct_computation():
    y = np.array([0, 2])
    weak = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    w2s = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    ceiling = np.array([[0.8, 0.1, 0.1], [0.05, 0.05, 0.9]])
    dec = decompose(y, weak, w2s, ceiling, divergence="kl", n_boot=0)
    assert dec.weak_error == pytest.approx((-math.log(0.5) - math.log(0.6)) / 2)  # cross-entropy = KL here
    assert dec.w2s_error == pytest.approx((-math.log(0.7) - math.log(0.8)) / 2)
    assert dec.misfit == pytest.approx((_kl(w2s[0], weak[0]) + _kl(w2s[1], weak[1])) / 2)  # KL(student || weak)
    assert dec.gain == pytest.approx(dec.weak_error - dec.w2s_error)
    assert dec.residual == pytest.approx(dec.gain - dec.misfit)
    ex = dec.extras
    assert ex["misfit_forward"] == pytest.approx((_kl(weak[0], w2s[0]) + _kl(weak[1], w2s[1])) / 2)
    assert ex["misfit_forward"] != pytest.approx(dec.misfit)  # the two directions differ
    assert (ex["weak_accuracy"], ex["w2s_accuracy"], ex["ceiling_accuracy"]) == (1.0, 1.0, 1.0)
    expected = np.mean([_kl(c, wk) - _kl(c, st) - _kl(st, wk) for c, wk, st in zip(ceiling, weak, w2s)])
    assert dec.diagnostics["proxy_residual"] == pytest.approx(expected)


def test_binary_probabilities_and_logits_give_the_same_numbers_and_no_nan_at_0_and_1():
    y = np.array([1, 0, 1, 1])
    p_weak = np.array([0.6, 0.3, 1.0, 0.0])  # p = 1 and p = 0: clipped, never NaN
    p_w2s = np.array([0.8, 0.2, 0.9, 0.4])
    by_prob = decompose(y, p_weak, p_w2s, divergence="kl", n_boot=50)
    assert np.isfinite([by_prob.weak_error, by_prob.w2s_error, by_prob.misfit]).all()
    q_weak, q_w2s = np.array([0.6, 0.3, 0.7, 0.4]), p_w2s
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    a = decompose(y, q_weak, q_w2s, divergence="kl", n_boot=0)
    b = decompose(y, logit(q_weak), logit(q_w2s), divergence="kl_logits", n_boot=0)
    for key in ("weak_error", "w2s_error", "misfit", "gain"):
        assert getattr(a, key) == pytest.approx(getattr(b, key), rel=1e-12)
    assert a.weak_error == pytest.approx(-np.mean(np.log([0.6, 0.7, 0.7, 0.4])))
    # soft binary labels: the reported error is KL(y || p), so the gain equals the cross-entropy gain
    soft = np.array([0.9, 0.2, 0.6, 0.7])
    s = decompose(soft, q_weak, q_w2s, divergence="kl", n_boot=0)
    ce = lambda p: -np.mean(soft * np.log(p) + (1 - soft) * np.log(1 - p))  # noqa: E731
    assert s.gain == pytest.approx(ce(q_weak) - ce(q_w2s))


def test_multiclass_logits_use_a_stable_log_softmax():
    y = np.array([0, 1])
    big = np.array([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 0.0]])
    dec = decompose(y, big, big * 0.5, divergence="kl_logits", n_boot=0)
    assert np.isfinite([dec.weak_error, dec.misfit]).all() and dec.weak_error == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(("args", "match"), [
    ((np.array([0, 1]), np.array([[np.nan, 0.0], [0.0, 1.0]]), np.zeros((2, 2))), "weak_pred"),
    ((np.array([0, 1]), np.array([[0.5, 0.4], [0.5, 0.5]]), np.array([[0.5, 0.5], [0.5, 0.5]])), "weak_pred rows"),
    ((np.array([0, 3]), np.array([[0.5, 0.5], [0.5, 0.5]]), np.array([[0.5, 0.5], [0.5, 0.5]])), "y_true holds"),
    ((np.array([0, 1]), np.array([[0.5, 0.5], [0.5, 0.5]]), np.array([[0.2, 0.3, 0.5]] * 2)), "w2s_pred"),
])  # fmt: skip
def test_bad_classification_input_is_a_value_error_naming_the_argument(args, match):
    divergence = "kl_logits" if np.isnan(args[1]).any() else "kl"
    with pytest.raises(ValueError, match=match):
        decompose(*args, divergence=divergence, n_boot=0)


# ---- the k-head mixture student (w2s_hf/kheads.py) -----------------------------------------------
def _softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def test_a_mixture_is_a_distribution_and_one_head_is_a_softmax_head():
    import torch

    from w2s_hf.heads.mixture import KHeadMixture

    torch.manual_seed(0)
    x = torch.randn(7, 5)
    mix = KHeadMixture(5, 3, k=4)
    torch.nn.init.normal_(mix.heads.weight)
    assert torch.allclose(mix(x).exp().sum(1), torch.ones(7), atol=1e-6)
    one = KHeadMixture(5, 3, k=1)
    assert torch.allclose(one(x), torch.log_softmax(one.heads(x), dim=1), atol=1e-6)
    # equal mixing weights over identical heads give that head back
    same = KHeadMixture(5, 3, k=3)
    with torch.no_grad():
        same.heads.weight.copy_(one.heads.weight.repeat(3, 1))
        same.heads.bias.copy_(one.heads.bias.repeat(3))
    assert torch.allclose(same(x), one(x), atol=1e-5)


def test_a_student_whose_class_holds_the_teacher_fits_it_and_weight_decay_spares_biases_and_theta():
    from w2s_hf.heads.mixture import fit_classifier

    rng = np.random.default_rng(0)
    X, Xv = rng.normal(size=(3000, 4)), rng.normal(size=(500, 4))
    W = rng.normal(size=(4, 3))
    fitted = fit_classifier(X, _softmax(X @ W), Xv, _softmax(Xv @ W), k=2, epochs=400, lr=0.05, weight_decay=0.01)
    misfit = decompose(_softmax(Xv @ W), _softmax(Xv @ W), fitted.predict_proba(Xv), divergence="kl", n_boot=0)
    assert misfit.w2s_error < 0.01  # KL(teacher || student) on held-out rows
    assert fitted.history[-1]["train"] < fitted.history[0]["train"]
    # Weight decay acts on the weights only: a huge one flattens every head, and the undecayed
    # biases still learn the class prior (decayed biases would be pulled to a uniform 0.5 / 0.5).
    y = np.eye(2)[(rng.random(3000) < 0.2).astype(int)]
    flat = fit_classifier(X, y, Xv, y[:500], k=1, loss="forward_kl", epochs=400, lr=0.05, weight_decay=20.0)
    assert float(flat.model.heads.weight.detach().abs().max()) < 0.1  # AdamW: decay, then one step of ~lr
    np.testing.assert_allclose(flat.predict_proba(Xv[:5]), np.tile(y.mean(0), (5, 1)), atol=0.02)


def test_the_kept_epoch_is_the_best_on_the_validation_targets():
    from w2s_hf.heads.mixture import fit_classifier

    rng = np.random.default_rng(1)
    X, Xv = rng.normal(size=(60, 20)), rng.normal(size=(200, 20))  # few rows, many features: it overfits
    y = np.eye(2)[rng.integers(0, 2, 60)]
    fitted = fit_classifier(X, y, Xv, np.eye(2)[rng.integers(0, 2, 200)], loss="forward_kl", epochs=300, lr=0.1)
    vals = [h["val"] for h in fitted.history]
    assert fitted.best_epoch == int(np.argmin(vals)) and fitted.best_epoch < len(vals) - 1


@pytest.mark.parametrize("bad", ["nan", "sum", "shape"])
def test_bad_targets_for_the_student_are_a_clear_error(bad):
    from w2s_hf.heads.mixture import fit_classifier

    X = np.zeros((4, 2))
    t = np.full((4, 2), 0.5)
    if bad == "nan":
        t[0, 0] = np.nan
    elif bad == "sum":
        t[1] = [0.9, 0.3]
    else:
        t = t[:3]
    with pytest.raises(ValueError, match="targets"):
        fit_classifier(X, t, X, np.full((4, 2), 0.5), epochs=2)
    with pytest.raises(ValueError, match="loss="):
        fit_classifier(X, np.full((4, 2), 0.5), X, np.full((4, 2), 0.5), loss="mse")
