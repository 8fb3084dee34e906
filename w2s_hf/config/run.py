"""Run configuration: dataclasses read by `W2SArgumentParser` (parser.py), plus `--config file.yaml`.

Precedence: built-in defaults < values in the YAML file < flags on the command line. Every key is
checked before any model is loaded or any feature extracted: an unknown key (in the YAML file or on
the command line) or a bad value raises `ConfigError` naming the key, the value and what is allowed.

The YAML file may be flat (`weak_model: ...`) or grouped (`weak: {model: ..., layer: 3}`); groups are
flattened to `<group>_<key>`.

More (design notes): docs/ARCHITECTURE.md, "Module notes".
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..data.kinds import TASK_TYPES
from ..data.rows import INPUT_KINDS
from ..data.splits import SPLIT_CHOICES
from ..divergences import loss_help, loss_names
from ..errors import ConfigError
from ..features.cache import default_cache_dir
from ..features.compose import SCALINGS
from ..features.hub import DTYPES
from ..features.pooling import POOLING_METHODS as POOLINGS
from ..heads.lora import MIXED_PRECISION
from ..heads.registry import SOLVERS
from ..pipeline.protocol import STAGES, STUDENT_KINDS
from .representation import RepresentationConfig
from .ridge import RIDGE_HEADS, Ridge

# Each list of allowed values lives with the module that owns it; these names are the config's view.
STUDENT_LOSSES = loss_names("classification", student=True)
PREFERENCE_LOSSES = loss_names("preference", student=True)
REGRESSION_LOSSES = loss_names("regression")
__all__ = ["ARGUMENT_CLASSES", "ConfigError", "HeadArguments", "LoraArguments", "ModelArguments", "RIDGE_HEADS",
           "Ridge", "RunArguments", "TaskArguments", "W2SConfig", "default_cache_dir"]


def _help(text: str, choices: tuple[str, ...] | None = None) -> dict:
    return {"help": text} if choices is None else {"help": text, "choices": list(choices)}


@dataclass
class ModelArguments:
    """The weak and the strong representation (a Hub id, a local folder, `packaged:NAME` or `rdkit:KIND`)."""

    _argument_group_name: ClassVar[str] = "models (weak and strong representations)"  # a section of --help

    weak_model: str = field(
        default="packaged:smiles-bert-h64-l2-mtr",
        metadata=_help("Weak model: Hub id, local folder, packaged:NAME or rdkit:KIND."),
    )
    weak_revision: str | None = field(
        default=None, metadata=_help("Hub revision (branch, tag or commit) of the weak model.")
    )
    weak_layer: int = field(
        default=-1, metadata=_help("Hidden-state index of the weak model (0 = embeddings, -1 = last).")
    )
    weak_pooling: str = field(default="mean", metadata=_help("Weak pooling over the attention mask.", POOLINGS))
    weak_max_length: int = field(default=512, metadata=_help("Weak tokenizer truncation length."))
    weak_dtype: str = field(default="float32", metadata=_help("Weak model dtype.", DTYPES))
    weak_trust_remote_code: bool = field(default=False, metadata=_help("Allow custom model code for the weak model."))
    weak_name: str | None = field(default=None, metadata=_help("Label of the weak representation in tables."))
    weak_scale: str = field(default="none", metadata=_help(
        "standard: z-score the weak features with the training rows' moments (never val or test).", SCALINGS))
    weak_pca: int | None = field(default=None, metadata=_help(
        "Keep the first k principal components of the weak features, fitted on the training rows only (cached)."))
    weak_parts: list[str] | None = field(default=None, metadata=_help(
        "A weak representation made of parts concatenated, each 'MODEL[,layer=..,pooling=..,scale=standard]' "
        "(YAML: a list of mappings); replaces weak_model."))
    weak_chat_template: bool = field(default=False, metadata=_help(
        "Format the weak model's inputs with its tokenizer's chat template (a text = a user turn; a pair or a "
        "preference side = a user turn and the assistant's reply)."))
    weak_device_map: str | None = field(default=None, metadata=_help(
        "'auto': spread the weak model over every visible GPU (a model larger than one GPU; one process)."))
    strong_model: str = field(
        default="packaged:smiles-bert-h192-l4-mtr",
        metadata=_help("Strong model: Hub id, local folder, packaged:NAME or rdkit:KIND."),
    )
    strong_revision: str | None = field(default=None, metadata=_help("Hub revision of the strong model."))
    strong_layer: int = field(
        default=-1, metadata=_help("Hidden-state index of the strong model (0 = embeddings, -1 = last).")
    )
    strong_pooling: str = field(default="mean", metadata=_help("Strong pooling over the attention mask.", POOLINGS))
    strong_max_length: int = field(default=512, metadata=_help("Strong tokenizer truncation length."))
    strong_dtype: str = field(default="float32", metadata=_help("Strong model dtype.", DTYPES))
    strong_trust_remote_code: bool = field(
        default=False, metadata=_help("Allow custom model code for the strong model.")
    )
    strong_chat_template: bool = field(default=False, metadata=_help(
        "Format the strong model's inputs with its tokenizer's chat template."))
    strong_device_map: str | None = field(default=None, metadata=_help(
        "'auto': spread the strong model over every visible GPU (a model larger than one GPU; one process)."))

    strong_name: str | None = field(default=None, metadata=_help("Label of the strong representation."))
    strong_scale: str = field(default="none", metadata=_help(
        "standard: z-score the strong features with the training rows' moments (never val or test).", SCALINGS))
    strong_pca: int | None = field(default=None, metadata=_help(
        "Keep the first k principal components of the strong features, fitted on the training rows only (cached). "
        "With parts: of the concatenation."))
    strong_parts: list[str] | None = field(default=None, metadata=_help(
        "A strong representation made of parts concatenated, e.g. "
        "'packaged:smiles-bert-h192-l4-mtr,scale=standard' 'rdkit:descriptors' (YAML: a list of mappings, each "
        "with its own layer, pooling, scale); replaces strong_model."))

    def representation(self, role: str) -> RepresentationConfig:
        """The representation of role 'weak' or 'strong' (`.build()` makes its featurizer)."""
        values = {f.name: getattr(self, f"{role}_{f.name}") for f in dataclasses.fields(RepresentationConfig)}
        if values["parts"]:
            values["model"] = None
        return RepresentationConfig.from_value(values, f"{role}_")

    def set_representation(self, role: str, rep: RepresentationConfig) -> None:
        """Write `rep` into the role's flat fields (a sweep's weak and strong models)."""
        for key, value in rep.as_dict().items():
            setattr(self, f"{role}_{key}", value)
        if rep.parts:
            setattr(self, f"{role}_model", rep.model_name)

    def validate(self) -> None:
        for role in ("weak", "strong"):
            self.representation(role)


@dataclass
class TaskArguments:
    """Which data, which targets, which split."""

    _argument_group_name: ClassVar[str] = "task (data, targets, split)"  # a section of --help

    task: str = field(
        default="esol",
        metadata=_help("Built-in task (esol, freesolv, lipophilicity, ellipse) or a CSV / JSON lines / parquet file."),
    )
    task_path: str | None = field(
        default=None, metadata=_help("Data file for tasks that need one (ellipse: the Kaggle train.csv).")
    )
    split: str = field(
        default="auto", metadata=_help(
            "Split kind: random, scaffold (SMILES only) or auto: scaffold for SMILES inputs, random for text.")
    )
    split_seed: int = field(default=0, metadata=_help("Seed of the split (the paper uses 0, 1, 2)."))
    targets: list[str] | None = field(
        default=None, metadata=_help("Target columns to use (default: all of the task's targets).")
    )
    input_column: str | None = field(default=None, metadata=_help("Input column of a user file."))
    target_columns: list[str] | None = field(default=None, metadata=_help("Target columns of a user file."))
    id_column: str | None = field(default=None, metadata=_help("Id column of a user file (default: the row number)."))
    input_kind: str | None = field(default=None, metadata=_help(
        "What a user file's inputs are: text or smiles (default: guessed from the column's name and values).",
        INPUT_KINDS))
    weak_fraction: float = field(
        default=0.5, metadata=_help("Share of the training part given to weak_train (the rest is w2s_train).")
    )
    drop_invalid: bool = field(default=False, metadata=_help("Drop rows with invalid SMILES instead of failing."))
    weak_budget: int | None = field(default=None, metadata=_help(
        "Graded weak teachers: the weak head trains on this many gold labels, a subset of weak_train drawn with "
        "split_seed (budgets of one seed are nested). Default: every weak_train row."))
    w2s_size: int | None = field(default=None, metadata=_help(
        "Scaling over N: the student and the ceiling train on this many w2s_train rows, the first N of one order "
        "drawn with split_seed (sizes of one seed are nested: the 64 rows are inside the 128). Default: every "
        "w2s_train row."))
    cv_folds: int | None = field(default=None, metadata=_help(
        "Cross-fitting: K folds over the labelled rows (whole scaffold groups for split=scaffold); this run's test "
        "split is fold cv_fold and val is drawn from the rest. A sweep runs every fold and pools the test rows, so "
        "each row is a test row exactly once."))
    cv_fold: int = field(default=0, metadata=_help("Cross-fitting: which fold (0..cv_folds-1) is the test split."))
    task_type: str = field(default="regression", metadata=_help(
        "regression (squared loss) or classification (KL misfit of Mulgund & Pabbaraju 2025: softmax heads, "
        "predictions are class probabilities).", TASK_TYPES))
    label_column: str | None = field(default=None, metadata=_help(
        "classification: the label column (a built-in task's target, e.g. cohesion, or a column of your file)."))
    threshold: float | None = field(default=None, metadata=_help(
        "classification: cut a numeric label column into two classes <t and >=t (needed for the QSAR tasks)."))
    dataset_config: str | None = field(default=None, metadata=_help(
        "task=hf:<path>: the dataset's config name (e.g. 'default')."))
    dataset_revision: str | None = field(default=None, metadata=_help("task=hf:<path>: branch, tag or commit."))
    data_files: list[str] | None = field(default=None, metadata=_help(
        "task=hf:<path>: data files to load (e.g. parquet files of a local Hub-like folder)."))
    split_map: list[str] | None = field(default=None, metadata=_help(
        "task=hf:<path> or a save_to_disk folder: THEIRS=OURS per split (ours: weak_train, w2s_train, val, test, "
        "or train, divided into weak_train/w2s_train), e.g. train=train validation=val test=test. Without it "
        "every split is pooled and split at random."))
    template: str | None = field(default=None, metadata=_help(
        "Build each input from the row's columns, e.g. 'Q: {question}\nA: {answer}' (replaces input_column)."))
    pair_column: str | None = field(default=None, metadata=_help(
        "A second input column: rows are text pairs (encoders: the tokenizer's pair template)."))
    pair_from_scores: str | None = field(default=None, metadata=_help(
        "task_type=preference from a scored table: the target column whose scores decide 'which of two items "
        "scores higher' (e.g. log_solubility for esol, cohesion for ellipse). Items are split first; pairs are "
        "drawn inside each split, so no item is in two splits (w2s_hf.data.score_pairs)."))
    pairs_per_item: int | None = field(default=None, metadata=_help(
        "pair_from_scores: untied partners drawn per item in each split (default 2; a split of n items gets "
        "about pairs_per_item * n pairs)."))

    def validate(self) -> None:
        _check_choice("split", self.split, SPLIT_CHOICES)
        _check_choice("task_type", self.task_type, TASK_TYPES)
        if self.input_kind is not None:
            _check_choice("input_kind", self.input_kind, INPUT_KINDS)
        if self.task_type == "regression":
            for key in ("label_column", "threshold"):
                if getattr(self, key) is not None:
                    raise ConfigError(f"{key}={getattr(self, key)!r} applies to task_type=classification only.")
        elif self.threshold is not None and not math.isfinite(self.threshold):
            raise ConfigError(f"threshold={self.threshold} must be a finite number.")
        if self.template is not None and self.input_column is not None:
            raise ConfigError(f"template={self.template!r} builds the input; drop input_column={self.input_column!r}.")
        if self.task.strip().lower() == "ellipse" and not self.task_path:
            raise ConfigError(
                "task=ellipse needs task_path: the Kaggle 'Feedback Prize - English Language Learning' "
                "train.csv, e.g. --task_path ../shared/data/ellipse/train.csv (it is not shipped)."
            )
        if not 0.0 < self.weak_fraction < 1.0:
            raise ConfigError(f"weak_fraction={self.weak_fraction} must be strictly between 0 and 1.")
        if self.weak_budget is not None and self.weak_budget < 2:
            raise ConfigError(f"weak_budget={self.weak_budget} must be >= 2 (a head needs two labelled rows).")
        if self.w2s_size is not None and self.w2s_size < 2:
            raise ConfigError(f"w2s_size={self.w2s_size} must be >= 2 (a head needs two rows); omit it for every "
                              "w2s_train row.")
        if self.cv_folds is not None:
            if self.cv_folds < 2:
                raise ConfigError(f"cv_folds={self.cv_folds} must be >= 2.")
            if not 0 <= self.cv_fold < self.cv_folds:
                raise ConfigError(f"cv_fold={self.cv_fold} must be in 0..{self.cv_folds - 1}.")
        elif self.cv_fold != 0:
            raise ConfigError(f"cv_fold={self.cv_fold} needs cv_folds.")
        if (self.pair_from_scores is not None or self.pairs_per_item is not None) and (
                self.task_type != "preference" or self.pair_from_scores is None):
            raise ConfigError(f"pair_from_scores={self.pair_from_scores!r} / pairs_per_item={self.pairs_per_item!r} "
                              "build a preference task from a score column: give task_type=preference and "
                              "pair_from_scores=<target column>.")
        if self.pairs_per_item is not None and self.pairs_per_item < 1:
            raise ConfigError(f"pairs_per_item={self.pairs_per_item} must be >= 1.")

    def load_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `w2s_hf.data.load_task`."""
        return {
            "split": self.split,
            "seed": self.split_seed,
            "targets": self.targets,
            "input_column": self.input_column,
            "target_columns": self.target_columns,
            "id_column": self.id_column,
            "path": self.task_path,
            "weak_fraction": self.weak_fraction,
            "drop_invalid": self.drop_invalid,
            **({"cv_folds": self.cv_folds, "cv_fold": self.cv_fold} if self.cv_folds else {}),
            "input_kind": self.input_kind,
            **({"task_type": self.task_type, "label_column": self.label_column, "threshold": self.threshold}
               if self.task_type != "regression" else {}),
            # new keys only when set (load_task's defaults otherwise)
            **{key: value for key, value in (
                ("dataset_config", self.dataset_config), ("revision", self.dataset_revision),
                ("data_files", self.data_files), ("split_map", self.split_map), ("template", self.template),
                ("pair_column", self.pair_column), ("pair_from_scores", self.pair_from_scores),
                ("pairs_per_item", self.pairs_per_item)) if value is not None},
        }


@dataclass
class HeadArguments:
    """How the linear heads are fitted."""

    _argument_group_name: ClassVar[str] = "heads (how the linear heads are fitted)"  # a section of --help

    solver: str = field(
        default="exact",
        metadata=_help("exact (least squares / ridge from sufficient statistics) or adamw (iterative, DDP).", SOLVERS),
    )
    ridge: Ridge = field(
        default=Ridge("auto"), metadata=_help(
            "Ridge penalty of every exact head: a number >= 0; 'auto' (each head's chosen on val from a grid); or "
            "'theorem', the theorem's setting: the student (w2s) at ridge 0, a projection onto a subspace "
            "(gain = misfit on its training rows), the weak head and the ceiling chosen on val. A number sets all "
            "three heads: ridge 0 also makes the teacher and the ceiling unregularised. w2s_ridge, weak_ridge and "
            "ceiling_ridge set one head apart."
        )
    )
    weak_ridge: Ridge | None = field(default=None, metadata=_help(
        "Ridge of the weak head alone (a number or 'auto'); default: from ridge."))
    w2s_ridge: Ridge | None = field(default=None, metadata=_help(
        "Ridge of the student alone (a number or 'auto'); 0 with the others on val is ridge=theorem."))
    ceiling_ridge: Ridge | None = field(default=None, metadata=_help(
        "Ridge of the ceiling alone (a number or 'auto'); default: from ridge."))
    weak_clip: bool = field(default=False, metadata=_help(
        "Clip the weak head's predictions, per target, to the range of the gold labels it was trained on (its "
        "weak_budget rows): a teacher that never labels outside what it saw. Regression only. The theorem asks "
        "nothing of the weak model, so it still applies; bounded weak labels keep a few extrapolated rows from "
        "steering a ridge-0 student."))
    fit_intercept: bool = field(default=True, metadata=_help("Fit an unpenalised intercept."))
    lr: float = field(default=1e-2, metadata=_help(
        "adamw and the classification heads: learning rate. The defaults are a starting point, not tuned per "
        "task: on unscaled features adamw can stop far from the exact head (compare with --solver exact, and "
        "raise lr/epochs)."))
    epochs: int | None = field(default=None, metadata=_help(
        "adamw and the classification heads: maximum number of epochs (default 300 for adamw, 2000 for the "
        "full-batch classification heads, where an epoch is one step; both stop early on val)."))
    batch_size: int = field(
        default=4096, metadata=_help("adamw: global batch size (rows per optimizer step, all processes together).")
    )
    weight_decay: float = field(default=0.0, metadata=_help("adamw: decoupled weight decay."))
    eval_every: int | None = field(
        default=None,
        metadata=_help(
            "adamw: evaluate on val every N optimizer steps (default: once per epoch, at least 5 steps apart)."
        ),
    )
    patience: int = field(
        default=10, metadata=_help("adamw: stop after this many evaluations without improvement on val.")
    )
    k_heads: int = field(default=1, metadata=_help(
        "classification: softmax heads mixed in the student and ceiling class (1 = one softmax head; the "
        "class approaches a convex one, where gain >= misfit holds, as k grows; the paper sweeps 1, 10, 50, 100)."))
    student_loss: str = field(default="reverse_kl", metadata=_help(
        f"classification: the student's loss on the weak labels: {loss_help('classification')}.", STUDENT_LOSSES))
    preference_loss: str = field(default="reverse_binary_kl", metadata=_help(
        f"preference: the student's loss on the weak P(first preferred): {loss_help('preference')}.",
        PREFERENCE_LOSSES))

    def validate(self) -> None:
        _check_choice("solver", self.solver, SOLVERS)
        _check_choice("student_loss", self.student_loss, loss_names("classification", student=True))
        _check_choice("preference_loss", self.preference_loss, loss_names("preference", student=True))
        if self.k_heads < 1:
            raise ConfigError(f"k_heads={self.k_heads} must be >= 1.")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr={self.lr} must be > 0.")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"epochs={self.epochs} must be >= 1.")
        for key in ("batch_size", "patience"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key}={getattr(self, key)} must be > 0.")
        if self.eval_every is not None and self.eval_every < 1:
            raise ConfigError(f"eval_every={self.eval_every} must be >= 1.")
        fixed = [self.ridge_for(h, h == "w2s") for h in RIDGE_HEADS]
        if self.solver == "adamw" and any(r is not None and r > 0 for r in fixed):
            raise ConfigError("ridge applies to solver=exact; use weight_decay for solver=adamw.")

    def max_epochs(self, classification: bool) -> int:
        """`epochs`, or the default: 300 for adamw, 2000 full-batch steps for the classification heads
        (measured on lipophilicity, 1,680 rows: the weak head's val loss stops improving after ~850)."""
        return self.epochs if self.epochs is not None else (2000 if classification else 300)

    def __post_init__(self) -> None:
        # the one place a ridge setting is parsed: flags, YAML values and sweeps all pass through here
        self.ridge = Ridge(self.ridge)
        for head in RIDGE_HEADS:
            value = getattr(self, f"{head}_ridge")
            if value is not None:
                value = Ridge(value, key=f"{head}_ridge")
                if value.preset:
                    raise ConfigError(f"{head}_ridge={value!r}: 'theorem' sets all heads; use ridge=theorem.")
                setattr(self, f"{head}_ridge", value)

    def ridge_for(self, head: str, is_student: bool) -> float | None:
        """The fixed penalty of one head (None: chosen on val): its own key, else `ridge`."""
        own = getattr(self, f"{head}_ridge", None)
        if own is not None:
            return own.value
        if self.ridge.preset:
            return 0.0 if is_student else None
        return self.ridge.value

    def ridge_setting(self) -> str:
        """The name a table gives this run's ridges."""
        student, others = self.ridge_for("w2s", True), {self.ridge_for(h, False) for h in ("weak", "ceiling")}
        if student == 0.0 and others == {None}:
            return "theorem (student 0, weak and ceiling on val)"
        if student == 0.0 and others == {0.0}:
            return "0 for all heads (teacher and ceiling unregularised too)"
        return "custom"


@dataclass
class LoraArguments:
    """Finetuned students (w2s_hf/heads/lora): LoRA on the transformer, the head started at the ridge head."""

    _argument_group_name: ClassVar[str] = "LoRA students"  # a section of --help

    student: str = field(default="linear", metadata=_help(
        "linear: the ridge student only. lora: also a LoRA-finetuned strong model trained on the weak labels "
        "(stage train_w2s_lora), reported beside the linear one; the theorem covers only the linear one.",
        STUDENT_KINDS))
    weak_student: str = field(default="linear", metadata=_help(
        "linear: the weak labels come from the weak ridge head. lora: from a LoRA-finetuned weak model "
        "trained on gold labels (stage train_weak_lora; Burns et al. 2023).", STUDENT_KINDS))
    lora_r: int = field(default=8, metadata=_help("LoRA rank (>= 1)."))
    lora_alpha: float = field(default=16.0, metadata=_help("LoRA scaling alpha (the update is scaled by alpha / r)."))
    lora_dropout: float = field(default=0.0, metadata=_help(
        "LoRA dropout in [0, 1). Above 0, N processes draw other masks than 1 (another valid path)."))
    lora_target_modules: list[str] | None = field(default=None, metadata=_help(
        "Module name suffixes to adapt (default: inferred from the model type, e.g. query value for BERT, "
        "c_attn for GPT-2, q_proj v_proj for Llama-style models)."))
    lora_lr: float = field(default=2e-4, metadata=_help("AdamW learning rate of the adapter and the head."))
    lora_epochs: int = field(default=3, metadata=_help("Maximum number of epochs over the training split."))
    lora_token_budget: int = field(default=2048, metadata=_help(
        "Tokens per global training batch (rows x longest row, all processes together)."))
    lora_eval_every: int | None = field(default=None, metadata=_help(
        "Evaluate (early stopping, hooks) every N steps (default: once per epoch); step 0 is always evaluated."))
    lora_patience: int = field(default=2, metadata=_help("Stop after this many evaluations without improvement."))
    lora_loss: str = field(default="squared", metadata=_help(
        "Regression: the training loss (w2s_hf.divergences). Classification LoRA students train "
        "like the k-head students: student_loss on weak labels, cross-entropy on gold labels.", REGRESSION_LOSSES))
    lora_mixed_precision: str = field(default="auto", metadata=_help(
        "auto: bf16 autocast on GPU, float32 on CPU.", MIXED_PRECISION))

    def validate(self) -> None:
        _check_choice("student", self.student, STUDENT_KINDS)
        _check_choice("weak_student", self.weak_student, STUDENT_KINDS)
        regression = loss_names("regression")
        if self.lora_loss in loss_names("classification", student=True):
            raise ConfigError(f"lora_loss={self.lora_loss!r} is a classification loss: with task_type=classification "
                              "a LoRA student trains on student_loss (and a head on gold labels on cross-entropy); "
                              f"lora_loss is the regression loss: {', '.join(regression)}.")
        _check_choice("lora_loss", self.lora_loss, regression)
        _check_choice("lora_mixed_precision", self.lora_mixed_precision, MIXED_PRECISION)
        for key in ("lora_r", "lora_alpha", "lora_lr", "lora_epochs", "lora_token_budget", "lora_patience"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{key}={value!r} must be > 0.")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"lora_dropout={self.lora_dropout!r} must be in [0, 1).")
        if self.lora_eval_every is not None and self.lora_eval_every < 1:
            raise ConfigError(f"lora_eval_every={self.lora_eval_every} must be >= 1.")
        if self.lora_target_modules is not None and (
                not self.lora_target_modules or not all(str(t).strip() for t in self.lora_target_modules)):
            raise ConfigError(f"lora_target_modules={self.lora_target_modules!r} must be module names.")

    def train_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `w2s_hf.heads.lora.train_lora`."""
        return {"lr": self.lora_lr, "epochs": self.lora_epochs, "token_budget": self.lora_token_budget,
                "eval_every": self.lora_eval_every, "patience": self.lora_patience, "loss": self.lora_loss,
                "mixed_precision": self.lora_mixed_precision}


@dataclass
class RunArguments:
    """Where things go and what to (re)do."""

    _argument_group_name: ClassVar[str] = "run (folder, cache, stages, seed)"  # a section of --help

    output_dir: str = field(default="runs/w2s", metadata=_help("Run folder: heads, predictions, results.json, plot."))
    cache_dir: str | None = field(
        default=None, metadata=_help("Feature cache (default $W2S_HF_CACHE, $HF_HOME/w2s_hf or ~/.cache/w2s_hf).")
    )
    seed: int = field(
        default=0, metadata=_help("Seed of everything random in training (not the split: see split_seed).")
    )
    report_to: str = field(
        default="tensorboard", metadata=_help("accelerate trackers: tensorboard, wandb, ..., all or none.")
    )
    stages: list[str] | None = field(
        default=None, metadata=_help(f"Stages to run, in order (default all): {' '.join(STAGES)}.")
    )
    overwrite: bool = field(default=False, metadata=_help("Redo the selected stages even if their artifacts exist."))
    no_cache: bool = field(
        default=False, metadata=_help("Extract features without reading or writing the feature cache.")
    )
    n_boot: int = field(default=1000, metadata=_help("Bootstrap resamples for the confidence intervals (0 = none)."))
    plot: bool = field(default=True, metadata=_help("Draw the error / misfit bar chart."))

    def validate(self) -> None:
        for stage in self.stages or []:
            _check_choice("stages", stage, STAGES)
        if self.n_boot < 0:
            raise ConfigError(f"n_boot={self.n_boot} must be >= 0.")

    def resolved_cache_dir(self) -> str:
        return self.cache_dir or str(default_cache_dir())

    def selected_stages(self) -> list[str]:
        return list(STAGES) if not self.stages else [s for s in STAGES if s in self.stages]


@dataclass
class W2SConfig:
    """Everything one weak-to-strong run needs."""

    model: ModelArguments
    task: TaskArguments
    head: HeadArguments
    run: RunArguments
    lora: LoraArguments = field(default_factory=LoraArguments)

    def parts(self) -> tuple:
        return (self.model, self.task, self.head, self.run, self.lora)

    def validate(self) -> "W2SConfig":
        for part in self.parts():
            part.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        """Flat {key: value} dict, as written into results.json and accepted back by `--config`."""
        out: dict[str, Any] = {}
        for part in self.parts():
            out.update(dataclasses.asdict(part))
        return out


ARGUMENT_CLASSES = (ModelArguments, TaskArguments, HeadArguments, RunArguments, LoraArguments)


def _check_choice(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of: {', '.join(allowed)}.")
