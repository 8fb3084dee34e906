"""The pretraining model (BERT encoder + masked-LM head + descriptor-regression head) and its collator.

MolBERT's recipe (Fabian et al. 2020) trains one encoder on two tasks at once: masked LM on SMILES
tokens and regression of standardised RDKit descriptors (MTR, as in ChemBERTa-2). The MTR head
reads the mean-pooled last layer, pooled with the same `pool` that `FrozenEncoder` uses, so the
representation the toolkit later extracts is the one the descriptors were regressed from. Only the
encoder (`model.bert`) is saved as the checkpoint: a plain `BertModel` folder that `AutoModel` loads.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import ModelOutput
from transformers.models.bert.modeling_bert import BertOnlyMLMHead

from ..features.pooling import pool


@dataclass
class PretrainOutput(ModelOutput):
    loss: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    mtr_loss: torch.Tensor | None = None
    mlm_sum: torch.Tensor | None = None  # summed token cross-entropy (kept for a global normalisation)


class BertForMaskedLMAndMTR(BertPreTrainedModel):
    """`BertModel` with an MLM head and, when `config.num_mtr_targets > 0`, a linear MTR head on mean pooling."""

    # Declared, so that checkpoints (save_pretrained inside the Trainer) save the shared bias once and a
    # resumed run loads it back into the one Parameter.
    _tied_weights_keys = {"cls.predictions.decoder.bias": "cls.predictions.bias"}

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        # BERT's head keeps a separate output bias that transformers ties to the decoder's only for its
        # own classes; share one Parameter, or DDP sees a parameter that gets no gradient.
        self.cls.predictions.bias = self.cls.predictions.decoder.bias
        n_targets = int(getattr(config, "num_mtr_targets", 0))
        self.mtr = nn.Linear(config.hidden_size, n_targets) if n_targets > 0 else None
        self.mtr_weight = float(getattr(config, "mtr_weight", 1.0))
        self.post_init()

    def forward(self, input_ids, attention_mask, token_type_ids=None, labels=None, descriptors=None, **_):
        """Losses of a batch, computed in length-grouped chunks (`config.chunk_tokens` tokens at most).

        The optimiser must see a batch of random molecules: batches grouped by length make the
        descriptor targets of a batch alike (size, atom counts), and the MTR loss then stalls (measured:
        val MTR 1.58 against 0.61 after 150 steps). Padding is still saved: the rows of the batch are
        sorted by length and run in chunks, each trimmed to its longest row. Losses are sums over the
        chunks divided by the batch's masked tokens and rows, so they equal the unchunked batch's.
        """
        lengths = attention_mask.sum(dim=1)
        order = torch.argsort(lengths, descending=True, stable=True)
        budget = int(getattr(self.config, "chunk_tokens", 0) or 0)
        chunks, start = [], 0
        while start < len(order):
            width, end = int(lengths[order[start]]), start + 1
            while budget and end < len(order) and (end - start + 1) * width <= budget:
                end += 1
            if not budget:
                end = len(order)
            chunks.append((order[start:end], width))
            start = end
        mlm_sum = mtr_sum = input_ids.new_zeros((), dtype=torch.float32)
        n_masked = (labels != -100).sum() if labels is not None else None
        for rows, width in chunks:
            hidden = self.bert(input_ids=input_ids[rows, :width], attention_mask=attention_mask[rows, :width],
                               token_type_ids=None if token_type_ids is None else token_type_ids[rows, :width],
                               return_dict=True).last_hidden_state
            if labels is not None:
                # The vocabulary projection runs only where a token was masked (~15% of positions).
                chunk_labels = labels[rows, :width]
                masked = chunk_labels != -100
                if masked.any():
                    logits = self.cls(hidden[masked])
                    mlm_sum = mlm_sum + nn.functional.cross_entropy(logits.float(), chunk_labels[masked],
                                                                    reduction="sum")
            if self.mtr is not None and descriptors is not None:
                pooled = pool(hidden, attention_mask[rows, :width], "mean")
                pred = self.mtr(pooled.to(self.mtr.weight.dtype)).float()
                mtr_sum = mtr_sum + ((pred - descriptors[rows].float()) ** 2).mean(dim=1).sum()
        mlm_loss = mlm_sum / n_masked.clamp(min=1) if labels is not None else mlm_sum
        mtr_loss = mtr_sum / len(input_ids)
        return PretrainOutput(loss=mlm_loss + self.mtr_weight * mtr_loss, mlm_loss=mlm_loss.detach(),
                              mtr_loss=mtr_loss.detach(), mlm_sum=mlm_sum)


class MLMAndMTRCollator:
    """Rows {"smiles", "descriptors"} -> a padded batch with 15% masking (80/10/10) and descriptor targets.

    With `enumerate_prob` > 0 a row's SMILES is replaced, with that probability, by a random valid
    SMILES of the same molecule (SMILES enumeration, Bjerrum 2017), so the model learns the molecule
    rather than one spelling of it. The randomness of a row (spelling, masked positions, replacement
    tokens) comes from a generator seeded by (seed, the molecule, the pass `epoch` over the corpus), not
    from a stream shared by the batch: a molecule gets the same masks whichever process, batch or
    position it lands in, so N processes train on exactly the batches that one process does, and a
    run resumed from a checkpoint draws what the uninterrupted run drew (the Trainer restores the pass;
    see output.epoch_callback). Each molecule occurs once a pass, so each pass masks it afresh.
    """

    def __init__(self, tokenizer, *, max_length: int = 128, mlm_probability: float = 0.15,
                 enumerate_prob: float = 0.0, seed: int = 0):
        self.tokenizer, self.max_length, self.enumerate_prob = tokenizer, max_length, float(enumerate_prob)
        self.mlm_probability, self.seed = float(mlm_probability), int(seed)
        self.special = set(tokenizer.all_special_ids)
        self.normal_ids = np.array([i for i in range(len(tokenizer)) if i not in self.special])
        self.epoch = 0

    def _rng(self, smiles: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(smiles.encode()), self.epoch])

    def _spell(self, smiles: str, rng: np.random.Generator) -> str:
        if self.enumerate_prob <= 0 or rng.random() >= self.enumerate_prob:
            return smiles
        from rdkit import Chem

        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            return smiles
        return Chem.MolToRandomSmilesVect(mol, 1, randomSeed=int(rng.integers(1, 2**31 - 1)))[0]

    def _mask(self, ids: list[int], rng: np.random.Generator) -> tuple[list[int], list[int]]:
        ids = np.asarray(ids)
        candidates = ~np.isin(ids, list(self.special))
        chosen = candidates & (rng.random(len(ids)) < self.mlm_probability)
        labels = np.where(chosen, ids, -100)
        roll = rng.random(len(ids))
        ids = np.where(chosen & (roll < 0.8), self.tokenizer.mask_token_id, ids)  # 80%: [MASK]
        swap = chosen & (roll >= 0.8) & (roll < 0.9)  # 10%: a random token; the last 10% stay as they are
        ids = np.where(swap, rng.choice(self.normal_ids, len(ids)), ids)
        return ids.tolist(), labels.tolist()

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        rngs = [self._rng(r["smiles"]) for r in rows]
        smiles = [self._spell(r["smiles"], rng) for r, rng in zip(rows, rngs)]
        enc = self.tokenizer(smiles, truncation=True, max_length=self.max_length, return_token_type_ids=False)
        masked = [self._mask(ids, rng) for ids, rng in zip(enc["input_ids"], rngs)]
        width = max(len(ids) for ids, _ in masked)
        input_ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (ids, lab) in enumerate(masked):  # right padding: the chunks of forward() rely on it
            n = len(ids)
            input_ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(ids), torch.tensor(lab), 1
        batch = {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
        if rows and "descriptors" in rows[0]:
            batch["descriptors"] = torch.tensor(np.asarray([r["descriptors"] for r in rows], dtype=np.float32))
        return batch


def make_config(vocab_size: int, *, hidden_size: int, num_layers: int, num_heads: int, max_position: int,
                num_mtr_targets: int, mtr_weight: float, dropout: float = 0.1, chunk_tokens: int = 2048) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
        intermediate_size=4 * hidden_size, max_position_embeddings=max_position, hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout, type_vocab_size=1, pad_token_id=0, tie_word_embeddings=False,
        num_mtr_targets=num_mtr_targets, mtr_weight=mtr_weight, chunk_tokens=chunk_tokens,
    )  # fmt: skip
