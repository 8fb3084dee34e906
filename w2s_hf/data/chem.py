"""RDKit helpers for SMILES tasks: validity, canonical form, Bemis–Murcko scaffolds.

RDKit is the optional `chem` extra, so it is imported only when a SMILES task needs it, and a missing
install says how to get it. RDKit's own parse errors are silenced per call (`BlockLogs`) because the
invalid rows are reported together in one `TaskDataError` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

CHEM_EXTRA_HINT = "pip install 'w2s_hf[chem]'  (or: pip install rdkit)"


def require_rdkit(purpose: str) -> Any:
    """Import and return `rdkit.Chem`, or raise ImportError saying what needed it and how to install."""
    try:
        from rdkit import Chem
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(f"RDKit is needed for {purpose}. Install the chem extra: {CHEM_EXTRA_HINT}") from exc
    return Chem


def parse_smiles(smiles: Sequence[str]) -> list[Any]:
    """RDKit molecules for `smiles`, None where a SMILES does not parse (or fails sanitization)."""
    Chem = require_rdkit("checking SMILES")
    from rdkit import rdBase

    blocker = rdBase.BlockLogs()
    try:
        return [Chem.MolFromSmiles(s) for s in smiles]
    finally:
        del blocker


def canonical_smiles(mols: Sequence[Any]) -> list[str]:
    """RDKit canonical (isomeric) SMILES of already-parsed molecules."""
    Chem = require_rdkit("canonical SMILES")
    return [Chem.MolToSmiles(m) for m in mols]


def murcko_scaffolds(mols: Sequence[Any]) -> list[str]:
    """Bemis–Murcko scaffold SMILES (ring systems plus linkers, side chains removed), chirality dropped.

    Acyclic molecules have the empty scaffold "", so they form one group, as in MoleculeNet/Chemprop.
    """
    require_rdkit("scaffold splits")
    from rdkit.Chem.Scaffolds import MurckoScaffold

    return [MurckoScaffold.MurckoScaffoldSmiles(mol=m, includeChirality=False) for m in mols]


# Rows per chunk of the streaming check: a bad row in the first chunk is reported after ~1 s of RDKit work.
CHECK_CHUNK = 4096


def smiles_keys(
    smiles: Sequence[str], *, scaffolds: bool = False, stop_at_bad: bool = False, chunk: int | None = None
) -> tuple[list[int], list[str | None], list[str] | None]:
    """(bad positions, canonical SMILES (None where bad), scaffolds or None) in one streaming pass.

    Each molecule is parsed, reduced to its strings and dropped, so memory grows with the strings,
    not with RDKit `Mol` objects (~38 KB each: 1M of them exhausted a 21 GB machine). With
    `stop_at_bad`, the pass ends at the end of the first chunk that holds an unparsable SMILES, so a
    bad row is reported in seconds whatever the file's length (the later rows are not checked).
    """
    Chem = require_rdkit("checking SMILES")
    from rdkit import rdBase

    chunk = chunk or CHECK_CHUNK
    if scaffolds:
        from rdkit.Chem.Scaffolds import MurckoScaffold
    bad: list[int] = []
    canon: list[str | None] = []
    scaffold: list[str] | None = [] if scaffolds else None
    blocker = rdBase.BlockLogs()
    try:
        for start in range(0, len(smiles), chunk):
            for i in range(start, min(start + chunk, len(smiles))):
                mol = Chem.MolFromSmiles(smiles[i])
                if mol is None:
                    bad.append(i)
                    canon.append(None)
                    if scaffold is not None:
                        scaffold.append("")
                    continue
                canon.append(Chem.MolToSmiles(mol))
                if scaffold is not None:
                    scaffold.append(MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False))
            if bad and stop_at_bad:
                break
    finally:
        del blocker
    return bad, canon, scaffold
