"""The k-head classifier's training loop: its AdamW against torch's, the column-layout forward against the
(n, k, c) formula, the centred copy against the moments, and no torch._dynamo import in a fit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def test_the_adamw_update_is_torch_adamw_bit_for_bit():
    import torch

    from w2s_hf.heads.mixture_train import AdamW

    torch.manual_seed(0)
    ours = [torch.randn(4, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64),
            torch.randn(2, dtype=torch.float64)]
    theirs = [p.clone() for p in ours]
    opt = AdamW([(ours[:1], 0.05), (ours[1:], 0.0)])
    ref = torch.optim.AdamW([{"params": theirs[:1], "weight_decay": 0.05},
                             {"params": theirs[1:], "weight_decay": 0.0}], lr=0.1)
    for step, lr in enumerate([0.1, 0.1, 0.03, 0.03, 0.01, 0.01, 0.01]):
        grads = [torch.randn_like(p) for p in ours]
        for p, q, g in zip(ours, theirs, grads):
            # the last parameter skips step 2: it keeps its own step count, as torch's does
            p.grad, q.grad = (None, None) if (step == 2 and p is ours[2]) else (g.clone(), g.clone())
        for group in ref.param_groups:
            group["lr"] = lr
        opt.step(lr)
        ref.step()
        for p, q in zip(ours, theirs):
            assert torch.equal(p, q)


def test_the_column_layout_forward_is_the_mixture_formula_and_scale_scales_the_columns():
    import torch

    from w2s_hf.heads.mixture import KHeadMixture

    torch.manual_seed(0)
    x, scale = torch.randn(9, 5, dtype=torch.float64), torch.rand(5, dtype=torch.float64) + 0.5
    for k in (1, 4):
        mix = KHeadMixture(5, 3, k).double()
        with torch.no_grad():
            mix.theta.normal_()
        torch.nn.init.normal_(mix.heads.weight)
        # the (n, k, c) formula: a softmax per head, mixed with softmax(theta) weights
        per_head = torch.softmax(mix.heads(x * scale).view(9, k, 3), dim=-1)
        expected = torch.log((per_head * torch.softmax(mix.theta, 0)[None, :, None]).sum(1))
        got = mix(x, scale)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got, mix(x * scale), rtol=1e-12, atol=1e-12)
        got.exp().sum().backward()  # the gradient reaches theta only through the mixture (zero at k = 1)
        assert mix.theta.grad is not None and mix.heads.weight.grad.abs().max() > 0


def test_the_centred_copy_is_written_by_the_moments_pass_without_changing_the_moments():
    from w2s_hf.heads.adamw import centred_columns, training_moments

    rng = np.random.default_rng(0)
    X = (rng.normal(size=(5000, 7)) * [1, 2, 3, 1e-3, 5, 1, 1] + [0, 1e3, -4, 7, 0, 0, 3]).astype(np.float32)
    X[:, 6] = 3.0  # a constant column: std 1, as in training_moments
    centred, mean, std, n = centred_columns(None, X)
    x_mean, x_map, _, _, n_ref = training_moments(None, X, X[:, :1], "standardize")
    assert n == n_ref == 5000 and centred.dtype == np.float64
    np.testing.assert_array_equal(mean, x_mean)
    np.testing.assert_array_equal(1.0 / std, np.diagonal(x_map))
    np.testing.assert_array_equal(centred, np.subtract(X, mean, dtype=np.float64))


def test_a_fit_does_not_import_torch_dynamo():
    """torch.optim imports torch._dynamo on its first optimizer (about 1 s); the classifier's loop needs none."""
    code = ("import sys, numpy as np\n"
            "from w2s_hf.heads.mixture import fit_classifier\n"
            "rng = np.random.default_rng(0)\n"
            "X, p = rng.normal(size=(50, 3)), rng.dirichlet([1, 1], size=50)\n"
            "fit_classifier(X[:40], p[:40], X[40:], p[40:], k=2, epochs=3)\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(Path.home())})
    assert out.stdout.strip() == "False"
