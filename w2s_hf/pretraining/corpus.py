"""The pretraining corpus: molecules that PyPI packages ship, minus every molecule of the QSAR tasks.

Sources (the `pretrain` extra installs the one that is not already a dependency):

- MoleculeACE 3.0.0 (MIT): 30 ChEMBL bioactivity sets, `MoleculeACE/Data/benchmark_data/*.csv`;
- RDKit's own `Data/NCI/first_5k.tpsa.csv` (the first 5,000 NCI molecules);
- MOSES (molsets 0.3.1, MIT): `moses/dataset/data/train.csv.gz`, 1,584,663 ZINC molecules (weight
  250-350, no charges), installed apart with `pip install --no-deps molsets==0.3.1` (its declared
  dependencies are not needed to read the file). `moses_molecules` takes a seeded subset of its rows
  before anything is parsed, so a corpus of a few hundred thousand molecules costs only their parsing.

Every SMILES is parsed by RDKit and written in its canonical form; duplicates, unparseable rows and
SMILES longer than `max_chars` are dropped, and so is every molecule whose canonical SMILES occurs in
ESOL, FreeSolv or Lipophilicity, so that no task molecule is seen in pretraining. The corpus is
sorted, so its fingerprint depends only on the set of molecules.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

QSAR_TASKS = ("esol", "freesolv", "lipophilicity")
SOURCES = ("moleculeace", "rdkit_nci", "moses")
DEFAULT_SOURCES = ("moleculeace", "rdkit_nci")  # the shipped family's corpus; MOSES is asked for by name
MOSES_PIP = "pip install --no-deps molsets==0.3.1"


@dataclass(frozen=True)
class Corpus:
    smiles: list[str]  # RDKit canonical, sorted, unique
    counts: dict[str, int]  # what each step kept or dropped, for the model card

    @property
    def fingerprint(self) -> str:
        return fingerprint_smiles(self.smiles)


def fingerprint_smiles(smiles: list[str]) -> str:
    digest = hashlib.sha256()
    for s in smiles:
        digest.update(s.encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def moleculeace_files() -> list[Path]:
    """The 30 ChEMBL csv files of MoleculeACE, found without importing the package (its imports are heavy)."""
    spec = importlib.util.find_spec("MoleculeACE")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the pretraining corpus needs MoleculeACE's data files: pip install --no-deps MoleculeACE==3.0.0 "
            "(--no-deps: its metadata pulls an old rdkit-pypi build beside rdkit)."
        )
    root = Path(list(spec.submodule_search_locations)[0]) / "Data" / "benchmark_data"
    files = sorted(root.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no csv files in {root}; reinstall MoleculeACE==3.0.0.")
    return files


def nci_file() -> Path:
    from rdkit import RDConfig

    path = Path(RDConfig.RDDataDir) / "NCI" / "first_5k.tpsa.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from this RDKit install.")
    return path


def moses_file(split: str = "train") -> Path:
    """MOSES's gzipped SMILES file, found without importing `moses` (its import needs fcd_torch and more)."""
    spec = importlib.util.find_spec("moses")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the corpus source 'moses' needs the MOSES data files: {MOSES_PIP} "
                          "(--no-deps: its declared dependencies, pomegranate and fcd-torch, are not needed).")
    path = Path(list(spec.submodule_search_locations)[0]) / "dataset" / "data" / f"{split}.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall MOSES: {MOSES_PIP}")
    return path


def read_moses(limit: int | None = None, seed: int = 0) -> list[str]:
    """MOSES train SMILES in file order, or `limit` of them drawn by a permutation of `seed` (sorted by row)."""
    import gzip

    with gzip.open(moses_file(), "rt") as fh:
        header = fh.readline().strip().split(",")
        if header[:1] != ["SMILES"]:
            raise ValueError(f"{moses_file()}: first column is {header[:1]}, expected SMILES.")
        rows = [line.split(",", 1)[0].strip() for line in fh if line.strip()]
    if limit is not None and limit < len(rows):
        import numpy as np

        keep = np.sort(np.random.default_rng(seed).permutation(len(rows))[:limit])
        rows = [rows[i] for i in keep]
    return rows


def read_source(name: str, *, moses_molecules: int | None = None, seed: int = 0) -> list[str]:
    """Raw SMILES of one source, in file order (MOSES: `moses_molecules` rows of it, drawn with `seed`)."""
    if name == "moleculeace":
        out = []
        for file in moleculeace_files():
            with open(file, newline="") as fh:
                reader = csv.DictReader(fh)
                if "smiles" not in (reader.fieldnames or []):
                    raise ValueError(f"{file}: no 'smiles' column (columns: {reader.fieldnames}).")
                out.extend(row["smiles"] for row in reader)
        return out
    if name == "rdkit_nci":
        with open(nci_file()) as fh:
            return [line.split(",")[0] for line in fh if line.strip() and not line.startswith("#")]
    if name == "moses":
        return read_moses(moses_molecules, seed)
    raise ValueError(f"unknown corpus source {name!r}; choose from {', '.join(SOURCES)}.")


def task_canonical_smiles(tasks: tuple[str, ...] = QSAR_TASKS) -> set[str]:
    """RDKit canonical SMILES of every molecule of the QSAR tasks (all rows of their files, every split)."""
    from ..data.chem import canonical_smiles, parse_smiles
    from ..data.sources import BUILTIN_TASKS, builtin_file, read_table

    out: set[str] = set()
    for task in tasks:
        spec = BUILTIN_TASKS[task]
        frame = read_table(builtin_file(spec, None))
        mols = parse_smiles([str(s) for s in frame[spec.input_column]])
        out.update(canonical_smiles([m for m in mols if m is not None]))
    return out


class PretrainDataError(ValueError):
    """The corpus cannot be used (an invalid SMILES in a corpus file, too few molecules)."""


def parse_sources(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """`"moleculeace,rdkit_nci,moses"` -> a tuple of known source names (an unknown one is an error)."""
    names = tuple(n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip())
    unknown = [n for n in names if n not in SOURCES]
    if unknown or not names:
        raise ValueError(f"sources={text!r}: choose a comma-separated list of {', '.join(SOURCES)}.")
    return names


def build_corpus(sources: tuple[str, ...] = DEFAULT_SOURCES, *, max_chars: int = 120,
                 exclude_tasks: tuple[str, ...] = QSAR_TASKS, moses_molecules: int | None = None,
                 seed: int = 0) -> Corpus:
    """The corpus described in the module docstring (`seed` draws the MOSES subset)."""
    raw: list[str] = []
    counts: dict[str, int] = {}
    for name in parse_sources(sources):
        rows = read_source(name, moses_molecules=moses_molecules, seed=seed)
        counts[f"rows_{name}"] = len(rows)
        raw.extend(rows)
    return corpus_from_smiles(raw, max_chars=max_chars, exclude_tasks=exclude_tasks, counts=counts)


def corpus_from_smiles(raw: list[str], *, max_chars: int = 120, exclude_tasks: tuple[str, ...] = QSAR_TASKS,
                       counts: dict[str, int] | None = None, source: str | None = None) -> Corpus:
    """Canonical, unique, short SMILES of `raw` minus the task molecules. Unparseable rows are counted,
    or, with `source` (a file the user gave), an error naming the first one's line."""
    from rdkit import Chem, rdBase

    counts = dict(counts or {})
    unique_raw = sorted(set(raw))
    # One molecule at a time: holding every parsed Mol of a few hundred thousand rows costs gigabytes.
    canon: set[str] = set()
    bad: list[str] = []
    blocker = rdBase.BlockLogs()
    for text in unique_raw:
        mol = Chem.MolFromSmiles(text)
        if mol is None:
            bad.append(text)
        else:
            canon.add(Chem.MolToSmiles(mol))
    del blocker
    if bad and source is not None:
        first = min(raw.index(s) for s in bad)
        raise PretrainDataError(f"{source}: line {first + 1} ({raw[first]!r}) is not a valid SMILES "
                                f"({len(bad)} invalid SMILES in all).")
    counts["unparseable"] = len(bad)
    counts["unique_canonical"] = len(canon)
    short = {s for s in canon if len(s) <= max_chars}
    counts[f"longer_than_{max_chars}"] = len(canon) - len(short)
    task = task_canonical_smiles(exclude_tasks) if exclude_tasks else set()
    kept = sorted(short - task)
    counts["task_molecules_removed"] = len(short) - len(kept)
    counts["molecules"] = len(kept)
    return Corpus(kept, counts)


def corpus_cache_path(cache_dir: str | os.PathLike, fingerprint: str, what: str) -> Path:
    return Path(cache_dir) / "pretraining" / fingerprint / what
