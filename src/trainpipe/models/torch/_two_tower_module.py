"""The two-tower retrieval network on the engine's ``training_step`` hook.

Each tower embeds an id (``nn.Embedding``) plus side features: numeric columns (standardised upstream),
categorical codes (one embedding table each) and multi-valued tags (mean of tag embeddings, 0 = padding);
an MLP (``tower_layers``) maps the concatenation to the output space, and outputs are L2-normalised, so a
score is ``cos(user, item) / temperature``.

Losses (``training_step``), on a batch of positive (user, item) pairs:

- ``in_batch_softmax`` (default): every other item of the batch is a negative; a softmax over the batch
  against the diagonal. With ``logq_correction`` the logits are corrected by ``-log q(item)`` (q = the item's
  share of training interactions, the chance that it appears in a batch), so popular items are not pushed
  down just for being sampled often (Yi et al., 2019). A batch item that is a training positive of the row's
  user (other than the row's own) is masked out: the user's positives are never negatives.
- ``bpr``: one uniformly sampled catalogue item per pair, resampled while it is a positive of the user.
- ``triplet``: ``n_negatives`` sampled items, hinge ``max(0, margin - s(pos) + s(neg))``; with
  ``hard_negatives`` only the highest-scoring sampled negative counts.

Validation (``validation_step`` over batches of validation users) ranks the whole catalogue with the user's
training items excluded and sums NDCG@k and recall@k; ``val_loss`` is ``1 - NDCG@k``, so early stopping,
top-k checkpoints and the plateau schedule follow validation NDCG (``monitor: recall``: recall@k).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from trainpipe.models.torch._module import TrainpipeModule

LOSSES = ("in_batch_softmax", "bpr", "triplet")


@dataclass(frozen=True)
class TowerInputs:
    """Side features of one entity type, one row per id index: numeric (n x d), categorical codes (n x c, with
    their cardinalities), tags (n x t, 0 = padding; ``n_tags`` includes the padding index)."""

    numeric: torch.Tensor
    categorical: torch.Tensor
    cardinalities: tuple[int, ...]
    tags: torch.Tensor
    n_tags: int

    @classmethod
    def empty(cls, n: int) -> TowerInputs:
        return cls(torch.zeros((n, 0)), torch.zeros((n, 0), dtype=torch.long), (), torch.zeros((n, 0),
                   dtype=torch.long), 0)


@dataclass(frozen=True)
class TwoTowerSpec:
    n_users: int
    n_items: int
    embedding_dim: int = 64
    tower_layers: tuple[int, ...] = (128, 64)
    loss: str = "in_batch_softmax"
    temperature: float = 0.05
    logq_correction: bool = True
    n_negatives: int = 5
    hard_negatives: bool = False
    margin: float = 0.2
    dropout: float = 0.0
    k: int = 10
    monitor: str = "ndcg"  # what val_loss follows: 1 - NDCG@k or 1 - recall@k
    user_numeric: int = 0
    user_cardinalities: tuple[int, ...] = ()
    user_tags: int = 0
    item_numeric: int = 0
    item_cardinalities: tuple[int, ...] = ()
    item_tags: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("tower_layers", "user_cardinalities", "item_cardinalities"):
            out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TwoTowerSpec:
        d = dict(data)
        for key in ("tower_layers", "user_cardinalities", "item_cardinalities"):
            d[key] = tuple(d.get(key, ()))
        return cls(**d)


class Tower(nn.Module):
    def __init__(self, n_ids: int, dim: int, n_numeric: int, cardinalities: Sequence[int], n_tags: int,
                 layers: Sequence[int], dropout: float) -> None:
        super().__init__()
        self.ids = nn.Embedding(n_ids, dim)
        nn.init.normal_(self.ids.weight, std=0.1)
        cat_dim = min(16, dim)
        self.cats = nn.ModuleList(nn.Embedding(c + 1, cat_dim) for c in cardinalities)  # +1: unknown level
        self.tags = nn.Embedding(n_tags, cat_dim, padding_idx=0) if n_tags > 1 else None
        width = dim + n_numeric + cat_dim * len(cardinalities) + (cat_dim if self.tags is not None else 0)
        mlp: list[nn.Module] = []
        for i, out in enumerate(layers):
            mlp.append(nn.Linear(width, out))
            if i + 1 < len(layers):
                mlp += [nn.ReLU(), nn.Dropout(dropout)] if dropout > 0 else [nn.ReLU()]
            width = out
        if not layers and width != dim:  # no MLP: side features still need a projection to the shared space
            mlp.append(nn.Linear(width, dim))
            width = dim
        self.mlp = nn.Sequential(*mlp)
        self.out_dim = width

    def forward(self, ids: torch.Tensor, numeric: torch.Tensor, categorical: torch.Tensor,
                tags: torch.Tensor) -> torch.Tensor:
        parts = [self.ids(ids)]
        if numeric.shape[1]:
            parts.append(numeric[ids])
        for j, emb in enumerate(self.cats):
            parts.append(emb(categorical[ids, j]))
        if self.tags is not None:
            t = tags[ids]
            e = self.tags(t)
            n = (t > 0).sum(dim=1, keepdim=True).clamp(min=1)
            parts.append(e.sum(dim=1) / n)
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        return nn.functional.normalize(self.mlp(x), dim=1)


class TwoTowerNet(TrainpipeModule):
    """User and item towers; see the module doc for the losses and the validation metric."""

    validation_keys: ClassVar[tuple[str, ...]] = ("ndcg", "recall", "count")
    user_numeric: torch.Tensor
    user_categorical: torch.Tensor
    user_tag_ids: torch.Tensor
    item_numeric: torch.Tensor
    item_categorical: torch.Tensor
    item_tag_ids: torch.Tensor
    item_log_q: torch.Tensor
    positive_keys: torch.Tensor
    val_seen_ptr: torch.Tensor
    val_seen_items: torch.Tensor
    val_rel_ptr: torch.Tensor
    val_rel_items: torch.Tensor
    val_users: torch.Tensor

    def __init__(self, spec: TwoTowerSpec, users: TowerInputs | None = None, items: TowerInputs | None = None,
                 item_log_q: torch.Tensor | None = None, positive_keys: torch.Tensor | None = None) -> None:
        super().__init__()
        self.spec = spec
        layers = tuple(spec.tower_layers)
        self.user_tower = Tower(spec.n_users, spec.embedding_dim, spec.user_numeric, spec.user_cardinalities,
                                spec.user_tags, layers, spec.dropout)
        self.item_tower = Tower(spec.n_items, spec.embedding_dim, spec.item_numeric, spec.item_cardinalities,
                                spec.item_tags, layers, spec.dropout)
        users = users or TowerInputs.empty(spec.n_users)
        items = items or TowerInputs.empty(spec.n_items)
        # data, not weights: not in the state_dict (the model folder keeps the embeddings they give)
        for prefix, t in (("user", users), ("item", items)):
            self.register_buffer(f"{prefix}_numeric", t.numeric.float(), persistent=False)
            self.register_buffer(f"{prefix}_categorical", t.categorical.long(), persistent=False)
            self.register_buffer(f"{prefix}_tag_ids", t.tags.long(), persistent=False)
        self.register_buffer("item_log_q", item_log_q if item_log_q is not None else torch.zeros(spec.n_items),
                             persistent=False)
        # sorted user * n_items + item of every training positive: membership by searchsorted
        self.register_buffer("positive_keys", positive_keys if positive_keys is not None
                             else torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("val_seen_ptr", torch.zeros(1, dtype=torch.long), persistent=False)
        self.register_buffer("val_seen_items", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("val_rel_ptr", torch.zeros(1, dtype=torch.long), persistent=False)
        self.register_buffer("val_rel_items", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("val_users", torch.zeros(0, dtype=torch.long), persistent=False)

    # ------------------------------------------------------------------ embeddings
    def users(self, ids: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.user_tower(ids, self.user_numeric, self.user_categorical, self.user_tag_ids)
        return out

    def items(self, ids: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.item_tower(ids, self.item_numeric, self.item_categorical, self.item_tag_ids)
        return out

    def all_items(self) -> torch.Tensor:
        return self.items(torch.arange(self.spec.n_items, device=self.item_log_q.device))

    def _is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        keys = self.positive_keys
        if keys.numel() == 0:
            return torch.zeros(users.shape, dtype=torch.bool, device=users.device)
        q = users * self.spec.n_items + items
        at = torch.searchsorted(keys, q).clamp(max=keys.numel() - 1)
        return keys[at] == q

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Any) -> torch.Tensor:
        (u, i), _ = batch
        s = self.spec
        uv, iv = self.users(u), self.items(i)
        if s.loss == "in_batch_softmax":
            logits = uv @ iv.T / s.temperature
            if s.logq_correction:
                logits = logits - self.item_log_q[i].unsqueeze(0)
            clash = self._is_positive(u.unsqueeze(1).expand(-1, i.shape[0]), i.unsqueeze(0).expand(u.shape[0], -1))
            clash |= i.unsqueeze(0) == i.unsqueeze(1)
            clash.fill_diagonal_(False)
            logits = logits.masked_fill(clash, -1e4)
            return nn.functional.cross_entropy(logits, torch.arange(u.shape[0], device=u.device))
        n_neg = 1 if s.loss == "bpr" else s.n_negatives
        neg = self._negatives(u, n_neg)
        pos = (uv * iv).sum(dim=1, keepdim=True) / s.temperature
        negs = torch.einsum("bd,bnd->bn", uv, self.items(neg.reshape(-1)).reshape(*neg.shape, -1)) / s.temperature
        if s.loss == "bpr":
            return -nn.functional.logsigmoid(pos - negs).mean()
        if s.hard_negatives:
            negs = negs.max(dim=1, keepdim=True).values
        return torch.relu(s.margin - (pos - negs) * s.temperature).mean()

    def _negatives(self, users: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` catalogue items per user, uniform, drawn again (up to 5 times) where one is a positive."""
        size = (users.shape[0], n)
        neg = torch.randint(0, self.spec.n_items, size, device=users.device)
        expanded = users.unsqueeze(1).expand(size)
        for _ in range(5):
            bad = self._is_positive(expanded, neg)
            if not bool(bad.any()):
                break
            neg = torch.where(bad, torch.randint(0, self.spec.n_items, size, device=users.device), neg)
        return neg

    # ------------------------------------------------------------------ validation
    def set_validation(self, users: torch.Tensor, seen: tuple[torch.Tensor, torch.Tensor],
                       relevant: tuple[torch.Tensor, torch.Tensor]) -> None:
        """Validation users (id indices; the validation data's rows are positions in this list), the items each
        saw in training (CSR: pointers, items) and their held-out positives (CSR)."""
        self.val_users = users.long()
        self.val_seen_ptr, self.val_seen_items = seen[0].long(), seen[1].long()
        self.val_rel_ptr, self.val_rel_items = relevant[0].long(), relevant[1].long()

    @staticmethod
    def _dense(rows: torch.Tensor, ptr: torch.Tensor, items: torch.Tensor, n_items: int) -> torch.Tensor:
        """(len(rows) x n_items) booleans of a CSR's rows."""
        starts, ends = ptr[rows], ptr[rows + 1]
        lengths = ends - starts
        out = torch.zeros((rows.shape[0], n_items), dtype=torch.bool, device=rows.device)
        total = int(lengths.sum())
        if total:
            which = torch.repeat_interleave(torch.arange(rows.shape[0], device=rows.device), lengths)
            offsets = torch.arange(total, device=rows.device) - torch.repeat_interleave(
                torch.cumsum(lengths, 0) - lengths, lengths)
            out[which, items[torch.repeat_interleave(starts, lengths) + offsets]] = True
        return out

    def validation_step(self, batch: Any) -> Mapping[str, torch.Tensor]:
        (rows,), _ = batch
        k = self.spec.k
        n_items = self.spec.n_items
        scores = (self.users(self.val_users[rows]) @ self.all_items().T).float()
        scores = scores.masked_fill(self._dense(rows, self.val_seen_ptr, self.val_seen_items, n_items), -math.inf)
        rel = self._dense(rows, self.val_rel_ptr, self.val_rel_items, n_items)
        top = scores.topk(min(k, n_items), dim=1).indices
        hits = rel.gather(1, top).double()
        n_rel = rel.sum(dim=1).double()
        discounts = 1.0 / torch.log2(torch.arange(2, top.shape[1] + 2, device=rows.device, dtype=torch.float64))
        ideal = torch.cumsum(discounts, 0)[(n_rel.clamp(max=top.shape[1]) - 1).clamp(min=0).long()]
        ndcg = torch.where(n_rel > 0, (hits * discounts).sum(dim=1) / ideal, torch.zeros_like(n_rel))
        recall = hits.sum(dim=1) / n_rel.clamp(min=1, max=k)
        return {"ndcg": ndcg.sum(), "recall": recall.sum(),
                "count": torch.tensor(float(rows.shape[0]), dtype=torch.float64, device=rows.device)}

    def validation_epoch_end(self, totals: Mapping[str, float]) -> dict[str, float]:
        n = max(totals["count"], 1.0)
        ndcg, recall, k = totals["ndcg"] / n, totals["recall"] / n, self.spec.k
        watched = recall if self.spec.monitor == "recall" else ndcg
        return {"val_loss": 1.0 - watched, f"val_ndcg@{k}": ndcg, f"val_recall@{k}": recall}
