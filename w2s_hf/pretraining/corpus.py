"""The pretraining corpus: molecules that PyPI packages ship, minus every molecule of the QSAR tasks.

Sources (the `pretrain` extra installs the one that is not already a dependency):

- MoleculeACE 3.0.0 (MIT): 30 ChEMBL bioactivity sets, `MoleculeACE/Data/benchmark_data/*.csv`;
- RDKit's own `Data/NCI/first_5k.tpsa.csv` (the first 5,000 NCI molecules).

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
SOURCES = ("moleculeace", "rdkit_nci")


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


def read_source(name: str) -> list[str]:
    """Raw SMILES of one source, in file order."""
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


def build_corpus(sources: tuple[str, ...] = SOURCES, *, max_chars: int = 120,
                 exclude_tasks: tuple[str, ...] = QSAR_TASKS) -> Corpus:
    """The corpus described in the module docstring."""
    raw: list[str] = []
    counts: dict[str, int] = {}
    for name in sources:
        rows = read_source(name)
        counts[f"rows_{name}"] = len(rows)
        raw.extend(rows)
    return corpus_from_smiles(raw, max_chars=max_chars, exclude_tasks=exclude_tasks, counts=counts)


def corpus_from_smiles(raw: list[str], *, max_chars: int = 120, exclude_tasks: tuple[str, ...] = QSAR_TASKS,
                       counts: dict[str, int] | None = None, source: str | None = None) -> Corpus:
    """Canonical, unique, short SMILES of `raw` minus the task molecules. Unparseable rows are counted,
    or, with `source` (a file the user gave), an error naming the first one's line."""
    from rdkit import Chem

    from ..data.chem import parse_smiles

    counts = dict(counts or {})
    unique_raw = sorted(set(raw))
    mols = parse_smiles(unique_raw)
    bad = [s for s, m in zip(unique_raw, mols) if m is None]
    if bad and source is not None:
        first = min(raw.index(s) for s in bad)
        raise PretrainDataError(f"{source}: line {first + 1} ({raw[first]!r}) is not a valid SMILES "
                                f"({len(bad)} invalid SMILES in all).")
    canon = {Chem.MolToSmiles(m) for m in mols if m is not None}
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
