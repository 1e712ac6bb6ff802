"""The ``text_encoder`` networks: a BERT-family encoder (Hugging Face ``transformers``) with a head, trained by
the shared :class:`~trainpipe.models.torch.Engine` through ``training_step``.

Two modules, one head:

- :class:`TextEncoderClassifier` (``mode: finetune``): a batch is ``((input_ids, attention_mask, extra),
  target)``; ``training_step`` trims the batch to its longest text (padding columns cost nothing), runs the
  encoder, pools (mean over real tokens, or the ``[CLS]`` vector), concatenates the other feature columns
  (``extra``: scaled numbers, one-hot categories) and applies the head. ``configure_parameters`` gives
  layer-wise learning-rate decay as optimizer parameter groups: the head at ``training.learning_rate``, the
  top encoder layer at ``lr * decay``, each layer below one more factor, the embeddings last; frozen layers
  (``freeze_layers``: the embeddings and the first N layers) are not trained at all.
- :class:`EmbeddingHead` (``mode: frozen``): the encoder runs once over every text (sorted by length,
  :func:`encode_texts`) and only the head trains on the pooled embeddings: much cheaper on a CPU.

Validation reports ``val_loss`` and, for classes, ``val_f1_macro`` from per-class true/false positive and
false negative counts summed over batches (and all-reduced across DDP ranks), which early stopping watches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainpipe.models.torch._module import TrainpipeModule

if TYPE_CHECKING:
    from trainpipe.models.torch._engine import Objective

ENCODE_BATCH = 64


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """One vector per text: the mean over real tokens (``mean``) or the first token (``cls``)."""
    if pooling == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def trim(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the padding columns every row of the batch has (texts padded to the longest one of the batch)."""
    width = int(mask.sum(dim=1).max().item()) if mask.numel() else 1
    width = max(width, 1)
    return ids[:, :width], mask[:, :width]


class _HeadMixin:
    """The head, the task's loss and the per-class counts behind ``val_f1_macro``."""

    n_classes: int
    task: str
    head: nn.Module

    def _counts(self, out: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.task == "binary":
            pred = (out[:, 0] > 0).long()
            truth = target[:, 0].long()
        else:
            pred, truth = out.argmax(dim=1), target.long()
        sums: dict[str, torch.Tensor] = {}
        for k in range(self.n_classes):
            p, t = pred == k, truth == k
            sums[f"tp{k}"] = (p & t).sum().double()
            sums[f"fp{k}"] = (p & ~t).sum().double()
            sums[f"fn{k}"] = (~p & t).sum().double()
        return sums


def macro_f1(totals: Mapping[str, float], n_classes: int) -> float:
    """Macro-averaged F1 from summed per-class counts (a class with no true and no predicted rows is left out,
    as scikit-learn's ``f1_score(average='macro', labels=present)``)."""
    scores = []
    for k in range(n_classes):
        tp, fp, fn = totals[f"tp{k}"], totals[f"fp{k}"], totals[f"fn{k}"]
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(sum(scores) / len(scores)) if scores else 0.0


def _validation_keys(task: str, n_classes: int) -> tuple[str, ...]:
    if task == "regression":
        return ("loss", "metric", "count")
    return ("loss", "metric", "count", *(f"{kind}{k}" for k in range(n_classes) for kind in ("tp", "fp", "fn")))


class _Validating(TrainpipeModule, _HeadMixin):
    def _setup_validation(self, task: str, n_classes: int) -> None:
        self.task, self.n_classes = task, n_classes
        self.validation_keys = _validation_keys(task, n_classes)  # type: ignore[misc]

    def _validation_sums(self, out: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        obj = self._objective()
        n = target.shape[0]
        sums = {"loss": obj.loss(out, target).double() * n, "metric": obj.metric_sum(out, target).double(),
                "count": torch.tensor(float(n), dtype=torch.float64, device=target.device)}
        if self.task != "regression":
            sums.update(self._counts(out, target))
        return sums

    def validation_epoch_end(self, totals: Mapping[str, float]) -> dict[str, float]:
        metrics = super().validation_epoch_end(totals)
        if self.task != "regression":
            metrics["val_f1_macro"] = macro_f1(totals, self.n_classes)
        return metrics


def make_head(in_dim: int, out_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, out_dim))


class EmbeddingHead(_Validating):
    """``mode: frozen``: the head on precomputed pooled embeddings (+ the other feature columns)."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float, task: str, n_classes: int,
                 objective: Objective | None = None) -> None:
        super().__init__(objective)
        self.head = make_head(in_dim, out_dim, dropout)
        self._setup_validation(task, n_classes)

    def forward(self, embedding: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        features = torch.cat([embedding, extra], dim=1) if extra.shape[1] else embedding
        out: torch.Tensor = self.head(features)
        return out

    def validation_step(self, batch: Any) -> Mapping[str, torch.Tensor]:
        inputs, target = batch
        return self._validation_sums(self(*inputs).float(), target)


class TextEncoderClassifier(_Validating):
    """``mode: finetune``: the encoder and the head, trained together."""

    encoder: Any  # a transformers encoder (BertModel and the like: .config, .embeddings, .encoder.layer)

    def __init__(self, encoder: Any, n_extra: int, out_dim: int, *, pooling: str, dropout: float,
                 freeze_layers: int, layer_decay: float, task: str, n_classes: int,
                 objective: Objective | None = None) -> None:
        super().__init__(objective)
        self.encoder = encoder
        self.pooling = pooling
        hidden = int(encoder.config.hidden_size)
        self.head = make_head(hidden + n_extra, out_dim, dropout)
        self.layer_decay = layer_decay
        self._setup_validation(task, n_classes)
        self.freeze(freeze_layers)
        # the encoder's own pooler ([CLS] -> dense -> tanh) is not used: no gradient would reach it, which DDP
        # refuses (every trained parameter must get one), so it is not trained
        for p in self._pooler_parameters():
            p.requires_grad_(False)

    def _layers(self) -> list[nn.Module]:
        return list(self.encoder.encoder.layer)

    def freeze(self, n_layers: int) -> None:
        """No gradient for the embeddings and the first ``n_layers`` layers (0: train everything)."""
        if n_layers <= 0:
            return
        for p in self.encoder.embeddings.parameters():
            p.requires_grad_(False)
        for layer in self._layers()[:n_layers]:
            for p in layer.parameters():
                p.requires_grad_(False)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        ids, mask = trim(ids, mask)
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        pooled = pool(hidden, mask, self.pooling)
        features = torch.cat([pooled, extra.to(pooled.dtype)], dim=1) if extra.shape[1] else pooled
        out: torch.Tensor = self.head(features)
        return out

    def validation_step(self, batch: Any) -> Mapping[str, torch.Tensor]:
        inputs, target = batch
        return self._validation_sums(self(*inputs).float(), target)

    def configure_parameters(self) -> Iterable[Any]:
        """Layer-wise learning-rate decay as parameter groups, each with an ``lr_scale`` the engine's optimizer
        multiplies ``training.learning_rate`` by: head 1, top layer ``decay``, ..., embeddings
        ``decay ** (layers + 1)``. Frozen parameters are left out."""
        layers = self._layers()
        groups: list[tuple[float, list[nn.Parameter]]] = [(1.0, list(self.head.parameters()))]
        for depth, layer in enumerate(reversed(layers), start=1):
            groups.append((self.layer_decay ** depth, list(layer.parameters())))
        groups.append((self.layer_decay ** (len(layers) + 1), list(self.encoder.embeddings.parameters())))
        out = []
        for scale, params in groups:
            trainable = [p for p in params if p.requires_grad]
            if trainable:
                out.append({"params": trainable, "lr_scale": scale})
        return out

    def _pooler_parameters(self) -> list[nn.Parameter]:
        pooler = getattr(self.encoder, "pooler", None)
        return list(pooler.parameters()) if pooler is not None else []


def encode_texts(encoder: Any, tokenizer: Any, texts: Sequence[str], max_length: int, pooling: str,
                 device: torch.device | None = None, batch_size: int = ENCODE_BATCH,
                 normalize: bool = True) -> torch.Tensor:
    """Pooled embeddings (float32, rows in the order of ``texts``), computed in batches of similar length (the
    texts are sorted by token count first, so little padding is computed). With ``normalize``, mean pooling is
    L2-normalised, the model's own sentence setting (``mode: frozen``); a fine-tuned model's head was trained on
    the plain pooled vectors (``normalize=False``)."""
    device = device or torch.device("cpu")
    encoder = encoder.to(device).eval()
    if not len(texts):
        return torch.zeros((0, int(encoder.config.hidden_size)))
    tokens = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)["input_ids"]
    order = sorted(range(len(tokens)), key=lambda i: len(tokens[i]))
    out = torch.empty((len(tokens), int(encoder.config.hidden_size)), dtype=torch.float32)
    pad = int(tokenizer.pad_token_id or 0)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            width = max(len(tokens[i]) for i in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for j, i in enumerate(rows):
                ids[j, :len(tokens[i])] = torch.tensor(tokens[i], dtype=torch.long)
                mask[j, :len(tokens[i])] = 1
            hidden = encoder(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
            pooled = pool(hidden.float(), mask.to(device), pooling)
            if pooling == "mean" and normalize:
                pooled = nn.functional.normalize(pooled, dim=1)
            out[torch.tensor(rows)] = pooled.cpu()
    return out


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask, padded to the longest text (at most ``max_length`` tokens)."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding="longest", return_tensors="pt")
    return enc["input_ids"].to(torch.long), enc["attention_mask"].to(torch.long)


__all__ = ["EmbeddingHead", "TextEncoderClassifier", "encode_texts", "macro_f1", "make_head", "pool", "tokenize",
           "trim"]
