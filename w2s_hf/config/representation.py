"""One representation schema for runs and sweeps: which model, how it is read, scaled and projected.

`RepresentationConfig` is what a role (weak or strong) of a run is and what a sweep's `strong` and
each of its `weak_models` is. A run's flags are its fields with the role as prefix (`--strong_layer`,
`--strong_pca`, `--strong_parts`); a sweep writes the same fields as a mapping
(`strong: {model: ..., pca: 16}`) or as one string `MODEL[,key=value,...]`
(`packaged:smiles-bert-h192-l4-mtr,layer=2,name=h192@L2`). A representation made of several parts
lists them under `parts` (each a mapping or a string with its own layer, pooling and scale); `scale`
and `pca` of the whole apply after the parts are concatenated. Statistics of `scale: standard` and
`pca` are fitted on the run's training rows only (`w2s_hf.features.compose`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..features.compose import SCALINGS
from ..features.hub import DTYPES
from ..features.pooling import POOLING_METHODS

# the fields a FrozenEncoder / RDKitFeaturizer reads (build_representation's keyword arguments)
ENCODER_KEYS = ("revision", "layer", "pooling", "max_length", "dtype", "trust_remote_code")
# fields that change no number: a label for tables and folder names
LABEL_KEYS = ("name",)


@dataclass
class RepresentationConfig:
    """A representation: a model (Hub id, folder, packaged:NAME, rdkit:KIND) or `parts`, and how it is read."""

    model: str | None = None
    name: str | None = None
    revision: str | None = None
    layer: int = -1
    pooling: str = "mean"
    max_length: int = 512
    dtype: str = "float32"
    trust_remote_code: bool = False
    scale: str = "none"  # "standard": z-scored with the training rows' moments
    pca: int | None = None  # keep the first k principal components of the training rows
    chat_template: bool = False  # format inputs with the tokenizer's chat template (decoder LLMs)
    device_map: str | None = None  # "auto": one model spread over every visible GPU
    parts: list[RepresentationConfig] | None = field(default=None)

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_value(cls, value: Any, where: str = "representation") -> RepresentationConfig:
        """A mapping, a `RepresentationConfig`, or the string form `MODEL[,key=value,...]`."""
        if isinstance(value, RepresentationConfig):
            return value
        if isinstance(value, str):
            value = _parse_string(value, where)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {value!r} is not a representation; give a model name or a mapping.")
        known = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(value) - known)
        if bad:
            raise ConfigError(f"Unknown key(s) {bad} in {where}; allowed: {sorted(known)}.")
        values = dict(value)
        if values.get("parts") is not None:
            if not isinstance(values["parts"], list) or not values["parts"]:
                raise ConfigError(f"{where}: parts must be a non-empty list of representations.")
            values["parts"] = [cls.from_value(p, _part(where, i)) for i, p in enumerate(values["parts"])]
        rep = cls(**values)
        rep.validate(where)
        return rep

    def validate(self, where: str = "representation") -> None:
        if self.parts:
            for i, part in enumerate(self.parts):
                if part.parts or part.pca is not None:
                    raise ConfigError(f"{_part(where, i)} has its own parts or pca; list every part at one "
                                      "level and give pca to the whole.")
            if self.scale != "none":
                raise ConfigError(f"{where}: with parts, scale belongs to each part (parts[i].scale), not the whole.")
        elif not str(self.model or "").strip():
            raise ConfigError(f"{_key(where, 'model')} is empty: give a Hub id, a local folder, packaged:NAME "
                              "or rdkit:KIND.")
        for key, allowed in (("pooling", POOLING_METHODS), ("dtype", DTYPES), ("scale", SCALINGS)):
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{_key(where, key)}={getattr(self, key)!r} is not allowed; "
                                  f"choose one of: {', '.join(allowed)}.")
        if self.max_length < 1:
            raise ConfigError(f"{_key(where, 'max_length')}={self.max_length} must be >= 1.")
        if self.device_map not in (None, "auto"):
            raise ConfigError(f"{_key(where, 'device_map')}={self.device_map!r} must be 'auto' or unset.")
        if self.pca is not None and (isinstance(self.pca, bool) or not isinstance(self.pca, int) or self.pca < 1):
            raise ConfigError(f"{_key(where, 'pca')}={self.pca!r} must be a whole number of components >= 1.")

    # ------------------------------------------------------------------ using
    @property
    def composed(self) -> bool:
        """Built by `ComposedRepresentation` (parts, scaling or PCA), not by one featurizer."""
        return bool(self.parts) or self.scale != "none" or self.pca is not None

    @property
    def model_name(self) -> str:
        """The model, or the parts' models joined by '+'."""
        return "+".join(p.model_name for p in self.parts) if self.parts else str(self.model)

    @property
    def label(self) -> str:
        """Short name for tables, plots and run folders."""
        if self.name:
            return self.name
        if self.parts:
            base = "+".join(p.label for p in self.parts)
        else:
            base = str(self.model).split(":", 1)[-1].rstrip("/").split("/")[-1]
            base = base if str(self.model).startswith("rdkit:") or self.layer == -1 else f"{base}@L{self.layer}"
        return base + (f"-pca{self.pca}" if self.pca else "")

    def encoder_kwargs(self) -> dict[str, Any]:
        """`build_representation` keyword arguments of a one-model representation."""
        return {"name": self.model, **{k: getattr(self, k) for k in ENCODER_KEYS},
                # only when set: rdkit featurizers take neither, and older runs' features keep their keys
                **({"chat_template": True} if self.chat_template else {}),
                **({"device_map": self.device_map} if self.device_map else {})}

    def build(self) -> Any:
        """The featurizer: one model's, or a `ComposedRepresentation` of the parts."""
        from ..features import build_representation
        from ..features.compose import ComposedRepresentation

        if not self.composed:
            return build_representation(**self.encoder_kwargs())
        parts = self.parts or [self]
        built = [(build_representation(**p.encoder_kwargs()), p.scale) for p in parts]
        return ComposedRepresentation(built, pca=self.pca, label=self.label)

    def group_key(self) -> tuple:
        """Representations that one forward pass can serve (all but the layer equal)."""
        return (self.model, *(getattr(self, k) for k in ENCODER_KEYS if k != "layer"))

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "parts"}
        out["parts"] = None if self.parts is None else [p.as_dict() for p in self.parts]
        return out


def _key(where: str, key: str) -> str:
    """How a message names a key: `weak_pooling` for a run's role prefix, `weak_models[1]: pooling` else."""
    return f"{where}{key}" if where.endswith("_") else f"{where}: {key}"


def _part(where: str, i: int) -> str:
    return f"{where}parts[{i}]" if where.endswith("_") else f"{where}.parts[{i}]"


def _parse_string(text: str, where: str) -> dict[str, Any]:
    """`MODEL[,key=value,...]` -> a mapping; values are read as YAML scalars (2 -> int, true -> bool)."""
    import yaml

    model, *options = [piece.strip() for piece in text.split(",")]
    values: dict[str, Any] = {"model": model}
    for option in options:
        key, sep, raw = option.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{where}: {option!r} in {text!r} is not key=value (e.g. layer=2, scale=standard).")
        values[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
    return values
