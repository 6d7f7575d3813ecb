"""Neural networks: the teacher encoder (GNN + BiLSTM + MLP → 128-d state) and Q head."""

from pcnalloc.nn.batching import ObsBatch, cat_batches, collate, collate_fixed
from pcnalloc.nn.encoder import EncoderShape, StateEncoder
from pcnalloc.nn.qhead import MASK_VALUE, QHead, QNetwork, mask_q

__all__ = [
    "MASK_VALUE",
    "EncoderShape",
    "ObsBatch",
    "QHead",
    "QNetwork",
    "StateEncoder",
    "cat_batches",
    "collate",
    "collate_fixed",
    "mask_q",
]
