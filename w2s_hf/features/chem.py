"""Chemistry featurizers as representations: `rdkit:descriptors` and `rdkit:morgan`.

They stand wherever a weak or strong model is named (`--weak_model rdkit:morgan`) and are cached
like model features (same `FeatureCache`, same sharded, resumable, multi-process extraction):

More (design notes): docs/ARCHITECTURE.md, "Module notes".
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Sequence

import numpy as np

from .cache import FeatureCache, fingerprint_texts, make_fingerprint
from .sharding import cached_extract

KINDS = ("descriptors", "morgan")


class RDKitFeaturizer:
    """A fixed featurizer of SMILES strings with the `encode` / `fingerprint` interface of FrozenEncoder.

    Transformer-only options (layer, pooling, max_length, dtype, revision, trust_remote_code) are
    accepted and ignored, so a config can switch between model families without other changes.
    """

    def __init__(self, kind: str, *, radius: int = 2, n_bits: int = 1024, **ignored: Any):
        kind = kind.strip().lower()
        if kind not in KINDS:
            raise ValueError(
                f"Unknown RDKit featurizer 'rdkit:{kind}'; choose one of: " + ", ".join(f"rdkit:{k}" for k in KINDS)
            )
        from ..data.chem import require_rdkit

        require_rdkit(f"the rdkit:{kind} featurizer")
        self.kind, self.radius, self.n_bits = kind, int(radius), int(n_bits)
        self.model_id = f"rdkit:{kind}"
        # descriptors are scaled with statistics of the training rows: callers pass `fit_rows`
        self.fits_on_rows = kind == "descriptors"

    def __repr__(self) -> str:
        return f"RDKitFeaturizer({self.model_id!r})"

    def _params(self) -> dict[str, Any]:
        import rdkit

        params: dict[str, Any] = {"featurizer": self.model_id, "rdkit": rdkit.__version__}
        if self.kind == "morgan":
            params.update(radius=self.radius, n_bits=self.n_bits)
        else:
            from rdkit.Chem import Descriptors

            params["descriptors"] = [name for name, _ in Descriptors._descList]
        return params

    def fingerprint(self, texts: Sequence[str], layer: int | None = None) -> str:
        return make_fingerprint({**self._params(), "data": fingerprint_texts(list(texts))})

    def content_key(self) -> str:
        """What identifies the featurizer's numbers: the RDKit version and its parameters."""
        return make_fingerprint(self._params())

    @property
    def hidden_size(self) -> int:
        if self.kind == "morgan":
            return self.n_bits
        from rdkit.Chem import Descriptors

        return len(Descriptors._descList)

    def _compute(self, smiles: Sequence[str]) -> np.ndarray:
        from rdkit import Chem, RDLogger

        RDLogger.DisableLog("rdApp.*")
        out = np.zeros((len(smiles), self.hidden_size), dtype=np.float32)
        if self.kind == "morgan":
            from rdkit.Chem import rdFingerprintGenerator

            gen = rdFingerprintGenerator.GetMorganGenerator(radius=self.radius, fpSize=self.n_bits)
        else:
            from rdkit.Chem import Descriptors
        for row, text in enumerate(smiles):
            mol = Chem.MolFromSmiles(text)
            if mol is None:
                raise ValueError(
                    f"rdkit:{self.kind}: invalid SMILES {text!r} (input row {row}); check the task with load_task."
                )
            if self.kind == "morgan":
                out[row] = gen.GetFingerprintAsNumPy(mol).astype(np.float32)
            else:
                with np.errstate(all="ignore"):
                    values = [safe_value(fn, mol) for _, fn in Descriptors._descList]
                    out[row] = np.array(values, dtype=np.float64).astype(np.float32)
        return out

    def encode(
        self,
        texts: Sequence[str],
        cache_dir: str | os.PathLike | None = None,
        *,
        accelerator: Any = None,
        overwrite: bool = False,
        no_cache: bool = False,
        show_progress: bool = True,
        fit_rows: Sequence[int] | np.ndarray | None = None,
    ) -> np.ndarray:
        """(n, d) float32 features of the SMILES `texts`, rows in the order given.

        The cache holds the raw values, so one entry serves every split. Descriptors are then
        standardised with the medians, means and standard deviations of the rows `fit_rows` (indices
        into `texts`: the run's training rows); None fits on every row (only for inputs that are all
        training data).
        """
        texts = list(texts)
        if not texts:
            raise ValueError("texts is empty: nothing to featurize.")
        caches = None
        if cache_dir is not None and not no_cache:
            caches = [
                FeatureCache(cache_dir, self.fingerprint(texts), meta={"featurizer": self.model_id, "n": len(texts)})
            ]

        def compute(rows: np.ndarray, advance) -> list[np.ndarray]:
            feats = self._compute([texts[i] for i in rows])
            advance(len(rows))
            return [feats]

        [raw] = cached_extract(
            len(texts),
            compute,
            caches,
            accelerator=accelerator,
            overwrite=overwrite,
            show_progress=show_progress,
            desc=self.model_id,
            shard_size=1024,
        )
        return standardise(np.asarray(raw), fit_rows=fit_rows) if self.kind == "descriptors" else np.asarray(raw)

    def encode_layers(
        self, texts: Sequence[str], layers: Sequence[int], cache_dir=None, **kwargs: Any
    ) -> dict[int, np.ndarray]:
        """A fixed featurizer has one 'layer': every layer asked for gets the same array."""
        features = self.encode(texts, cache_dir, **kwargs)
        return {int(layer): features for layer in layers}


def safe_value(fn, mol) -> float:
    try:
        return float(fn(mol))
    except Exception:  # RDKit raises assorted errors for exotic molecules; treat as missing
        return float("nan")


def standardise(x: np.ndarray, clip: float = 10.0, fit_rows: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Column-wise z-scores fitted on the rows `fit_rows` (all rows when None), applied to every row.

    Non-finite values (descriptors RDKit cannot compute, e.g. partial-charge terms) become the fit
    rows' column median; columns constant on the fit rows become 0; values are clipped at +-`clip`
    standard deviations so that a few heavy-tailed descriptors (Ipc) do not dominate a ridge penalty.
    No label is read, only inputs.
    """
    x = np.array(x, dtype=np.float64)
    fit = np.arange(x.shape[0]) if fit_rows is None else np.asarray(fit_rows, dtype=np.int64)
    if fit.size == 0:
        raise ValueError("fit_rows is empty: the descriptor scaler needs at least one training row.")
    bad = ~np.isfinite(x)
    if bad.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a column all NaN on the fit rows: median 0
            medians = np.nanmedian(np.where(bad, np.nan, x)[fit], axis=0)
        x[bad] = np.take(np.nan_to_num(medians), np.nonzero(bad)[1])
    mean, std = x[fit].mean(axis=0), x[fit].std(axis=0)
    z = (x - mean) / np.where(std > 0, std, 1.0)
    z[:, std == 0] = 0.0
    return np.clip(z, -clip, clip).astype(np.float32)
