"""`evaluate` metric module: the misfit decomposition of weak-to-strong gain.

Loaded offline from its folder: `evaluate.load(w2s_hf.evaluation.metric_path())`. The numbers come
from `w2s_hf.misfit.decompose`, so they are the same as the toolkit's results.json.
"""

import datasets
import evaluate
import numpy as np

from w2s_hf.decomposition.core import DIAGNOSTICS, QUANTITIES, decompose

_CITATION = """\
@inproceedings{charikar2024quantifying,
  title     = {Quantifying the Gain in Weak-to-Strong Generalization},
  author    = {Charikar, Moses and Pabbaraju, Chirag and Shiragur, Kirankumar},
  booktitle = {Advances in Neural Information Processing Systems},
  year      = {2024}
}
"""

_DESCRIPTION = """\
The misfit decomposition of weak-to-strong generalization for regression with the squared loss
(Charikar, Pabbaraju & Shiragur, NeurIPS 2024). A strong model trained on a weak model's labels
(the "w2s" model) gains gain = weak_error - w2s_error over its teacher, and when the strong class is
convex the gain is at least the misfit = mean (w2s - weak)^2, with equality for a linear subspace.
The misfit needs no gold labels, so it predicts the gain: predicted_w2s_error = weak_error - misfit,
and residual = gain - misfit measures how far the theorem's equality is from holding. With the
predictions of a strong head trained on gold labels (the ceiling), it also reports ceiling_error and
pgr = gain / (weak_error - ceiling_error), the performance gap recovered (Burns et al., 2023).
Multi-target regression: pass one list of values per example; quantities are averaged over targets
and also reported per target.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`, or `list` of `list` of `float`): the w2s model's predictions
        (the strong model trained on weak labels), one per example (one list per example for
        several targets).
    weak_predictions (same shape as `predictions`): the weak model's predictions on the same rows.
    references (same shape as `predictions`): gold labels.
    ceiling_predictions (same shape, *optional*): predictions of the strong model trained on gold
        labels. A keyword of `compute` only (not batched by `add_batch`).
    target_names (`list` of `str`, *optional*): names of the target columns (default target_0, ...).
    n_boot (`int`, defaults to 1000): bootstrap resamples for the intervals (0 = none).
    seed (`int`, defaults to 0): seed of the bootstrap.
    confidence (`float`, defaults to 0.95): coverage of the percentile intervals.
    divergence (`str`, defaults to "squared"): "kl" (class probabilities) or "kl_logits" (logits) for
        classification (Mulgund & Pabbaraju 2025): predictions are then one list per example, references
        class indices; errors are cross-entropy, misfit KL(w2s || weak), and the result adds
        misfit_forward and the accuracies.
Returns:
    weak_error, w2s_error, misfit, gain, residual, predicted_w2s_error (`float`); ceiling_error and
    pgr (`float`, or None without ceiling_predictions; pgr is None when the gap weak_error -
    ceiling_error is <= 0 or its interval contains 0; averaged pgr is sum(gain) / sum(gap));
    with ceiling_predictions, the residual diagnostics (`float`): finite_sample_term and
    nonrealizability_term (they sum to the residual exactly), finite_sample_bound and
    nonrealizability_bound (their Cauchy-Schwarz bounds), and proxy_weak_error, proxy_w2s_error,
    proxy_gain, proxy_residual, proxy_predicted_w2s_error, proxy_pgr (the ceiling's predictions as the
    truth), with `reading` (`str`), one line saying whether the misfit can predict the gain;
    n (`int`); `<quantity>_ci` ([low, high]) for each quantity when n_boot > 0; and,
    with several targets, `<target>/<quantity>` for each target.
Examples:
    >>> metric = evaluate.load(w2s_hf.evaluation.metric_path())
    >>> out = metric.compute(predictions=[1.0, 2.0, 2.5], weak_predictions=[1.5, 1.0, 3.0],
    ...                      references=[1.0, 2.0, 3.0], n_boot=0)
    >>> round(out["misfit"], 4), round(out["gain"], 4)
    (0.5, 0.3333)
"""

_QUANTITIES = QUANTITIES


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MisfitDecomposition(evaluate.Metric):
    """Weak error, w2s error, misfit, gain, residual (and ceiling error, PGR) with bootstrap intervals."""

    def _info(self):
        scalar = datasets.Value("float64")
        vector = datasets.Sequence(datasets.Value("float64"))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            # One value per example, or one list of values per example (several targets).
            features=[
                datasets.Features({"predictions": scalar, "weak_predictions": scalar, "references": scalar}),
                datasets.Features({"predictions": vector, "weak_predictions": vector, "references": vector}),
                # classification: class probabilities (or logits) per example, a class index as reference
                datasets.Features({"predictions": vector, "weak_predictions": vector, "references": scalar}),
            ],
            reference_urls=["https://arxiv.org/abs/2405.15116"],
        )

    def _compute(self, predictions, weak_predictions, references, ceiling_predictions=None,
                 target_names=None, n_boot=1000, seed=0, confidence=0.95, divergence="squared"):
        ceiling = None if ceiling_predictions is None else np.asarray(ceiling_predictions, dtype=np.float64)
        dec = decompose(
            np.asarray(references, dtype=np.float64),
            np.asarray(weak_predictions, dtype=np.float64),
            np.asarray(predictions, dtype=np.float64),
            ceiling,
            target_names=target_names, n_boot=n_boot, seed=seed, confidence=confidence, divergence=divergence,
        ).as_dict()
        out = {q: dec[q] for q in _QUANTITIES}
        out.update(dec["extras"])  # classification: accuracies, forward misfit
        out.update({q: dec["diagnostics"][q] for q in DIAGNOSTICS})  # None without a ceiling
        out["reading"] = dec["reading"]
        out["n"] = dec["n"]
        out.update({f"{q}_ci": v for q, v in {**dec["ci"], **dec["diagnostics_ci"]}.items()})
        if len(dec["per_target"]) > 1:
            for target, values in dec["per_target"].items():
                out.update({f"{target}/{q}": values[q] for q in _QUANTITIES if q in values})
                out.update({f"{target}/{q}": v for q, v in dec["diagnostics_per_target"].get(target, {}).items()})
        return out
