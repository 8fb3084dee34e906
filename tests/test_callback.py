"""MisfitCallback logs the decomposition inside a tiny Trainer run (CPU, no reporting, 2 epochs)."""

import numpy as np
import pytest
import torch
from helpers import Recorder

from w2s_hf.decomposition.core import decompose
from w2s_hf.hooks.callbacks import MisfitCallback


class TinyRegressor(torch.nn.Module):
    def __init__(self, d, k=1):
        super().__init__()
        self.linear = torch.nn.Linear(d, k)

    def forward(self, x, labels=None):
        logits = self.linear(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = self.loss(logits, labels)
        return out

    @staticmethod
    def loss(logits, labels):
        return torch.nn.functional.mse_loss(logits.reshape(labels.shape), labels)



def toy_data(k=1, n_train=96, n_eval=40, d=6, seed=0):
    from datasets import Dataset

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_train + n_eval, d)).astype(np.float32)
    W = rng.normal(size=(d, k))
    y = X @ W + 0.1 * rng.normal(size=(n_train + n_eval, k))
    weak = y + rng.normal(size=y.shape)  # the weak teacher's labels: noisy
    shape = (lambda a: a[:, 0]) if k == 1 else (lambda a: a)
    train = Dataset.from_dict({"x": X[:n_train].tolist(), "labels": shape(weak[:n_train]).astype(np.float32).tolist()})
    evalset = Dataset.from_dict({"x": X[n_train:].tolist(), "labels": shape(y[n_train:]).astype(np.float32).tolist()})
    return train, evalset, shape(weak[n_train:]), shape(y[n_train:])


def make_trainer(tmp_path, train, evalset, k=1, **kwargs):
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", num_train_epochs=2,
        per_device_train_batch_size=16, per_device_eval_batch_size=16, learning_rate=5e-2,
        eval_strategy="epoch", logging_strategy="epoch", save_strategy="no", disable_tqdm=True, seed=0,
    )
    torch.manual_seed(0)
    return Trainer(model=TinyRegressor(6, k), args=args, train_dataset=train, eval_dataset=evalset, **kwargs)


def test_callback_logs_the_decomposition_in_a_trainer_run(tmp_path):
    train, evalset, weak_eval, y_eval = toy_data()
    rec = Recorder()
    callback = MisfitCallback(weak_predictions=weak_eval, ceiling_predictions=y_eval + 0.05, hooks=[rec], n_boot=50)
    trainer = make_trainer(tmp_path, train, evalset, compute_metrics=callback.compute_metrics, callbacks=[callback])
    trainer.train()

    logged = [log for log in trainer.state.log_history if "eval_misfit" in log]
    assert len(logged) == 2  # one per epoch
    for key in ("eval_weak_error", "eval_w2s_error", "eval_misfit", "eval_gain", "eval_residual",
                "eval_predicted_w2s_error", "eval_ceiling_error", "eval_pgr", "eval_misfit_ci_low"):
        assert key in logged[-1], key
    # the logged numbers are the decomposition of the model's predictions at that point
    preds = trainer.predict(evalset).predictions[:, 0]
    expected = decompose(y_eval, weak_eval, preds, y_eval + 0.05, n_boot=0)
    assert logged[-1]["eval_misfit"] == pytest.approx(expected.misfit, rel=1e-5)
    assert logged[-1]["eval_w2s_error"] == pytest.approx(expected.w2s_error, rel=1e-5)
    assert logged[-1]["eval_weak_error"] == pytest.approx(np.mean((weak_eval - y_eval) ** 2), rel=1e-5)
    assert logged[-1]["eval_gain"] == pytest.approx(
        logged[-1]["eval_weak_error"] - logged[-1]["eval_w2s_error"], rel=1e-6
    )
    # hooks saw every evaluation with the step, and the end of training
    assert [c[0] for c in rec.calls] == [log["step"] for log in logged]
    assert all(c[1] == "eval" for c in rec.calls)
    assert rec.calls[-1][2].misfit == pytest.approx(expected.misfit, rel=1e-5)
    assert rec.ended["splits"]["eval"]["misfit"] == pytest.approx(expected.misfit, rel=1e-5)
    assert [h["step"] for h in rec.ended["history"]] == [log["step"] for log in logged]


def test_callback_attach_keeps_existing_metrics_and_handles_several_targets(tmp_path):
    train, evalset, weak_eval, _ = toy_data(k=2)
    trainer = make_trainer(tmp_path, train, evalset, k=2, compute_metrics=lambda p: {"custom": 1.0})
    MisfitCallback(weak_eval, target_names=["a", "b"]).attach(trainer)
    metrics = trainer.evaluate()
    assert metrics["eval_custom"] == 1.0
    for key in ("eval_misfit", "eval_a/misfit", "eval_b/w2s_error"):
        assert key in metrics, key
    assert metrics["eval_misfit"] == pytest.approx((metrics["eval_a/misfit"] + metrics["eval_b/misfit"]) / 2)


def test_callback_errors_are_clear(tmp_path):
    train, evalset, weak_eval, y_eval = toy_data()
    # without compute_metrics the Trainer never hands predictions to the callback
    trainer = make_trainer(tmp_path, train, evalset, callbacks=[MisfitCallback(weak_eval)])
    with pytest.raises(ValueError, match="compute_metrics=callback.compute_metrics"):
        trainer.evaluate()
    # weak predictions for a different set of rows
    short = MisfitCallback(weak_eval[:-3])
    trainer = make_trainer(tmp_path, train, evalset, compute_metrics=short.compute_metrics, callbacks=[short])
    with pytest.raises(ValueError, match="predictions have shape \\(40,\\) but weak_predictions has \\(37,\\)"):
        trainer.evaluate()
    with pytest.raises(ValueError, match="references has shape"):
        MisfitCallback(weak_eval, references=y_eval[:5])


class TinyClassifier(TinyRegressor):
    @staticmethod
    def loss(logits, labels):
        return torch.nn.functional.cross_entropy(logits, labels)


def test_callback_decomposes_a_classifier_with_the_kl_misfit(tmp_path):
    """A Trainer classifier's logits, the weak model's logits and class-index labels: the KL quantities."""
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    rng = np.random.default_rng(0)
    X = rng.normal(size=(136, 6)).astype(np.float32)
    y = (X @ rng.normal(size=(6, 3))).argmax(1)
    weak_logits = X[96:] @ rng.normal(size=(6, 3)) * 0.5  # a weak teacher's logits on the eval rows
    train = Dataset.from_dict({"x": X[:96].tolist(), "labels": y[:96].tolist()})
    evalset = Dataset.from_dict({"x": X[96:].tolist(), "labels": y[96:].tolist()})
    callback = MisfitCallback(weak_predictions=weak_logits, divergence="kl_logits")
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", num_train_epochs=1,
                             per_device_train_batch_size=16, per_device_eval_batch_size=16, learning_rate=5e-2,
                             eval_strategy="epoch", save_strategy="no", disable_tqdm=True, seed=0)
    torch.manual_seed(0)
    trainer = Trainer(model=TinyClassifier(6, 3), args=args, train_dataset=train, eval_dataset=evalset,
                      compute_metrics=callback.compute_metrics, callbacks=[callback])
    trainer.train()
    logged = [log for log in trainer.state.log_history if "eval_misfit" in log][-1]
    preds = trainer.predict(evalset).predictions
    expected = decompose(y[96:], weak_logits, preds, divergence="kl_logits", n_boot=0)
    assert logged["eval_misfit"] == pytest.approx(expected.misfit, rel=1e-5)  # KL(w2s || weak)
    assert logged["eval_w2s_error"] == pytest.approx(expected.w2s_error, rel=1e-5)
    assert logged["eval_w2s_accuracy"] == pytest.approx(np.mean(preds.argmax(1) == y[96:]))
    assert "eval_misfit_forward" in logged
