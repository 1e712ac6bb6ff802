"""``model.type: two_tower``: a two-tower retrieval model for ``task: ranking`` on the shared torch engine.

``fit`` takes :class:`~trainpipe.data._interactions.RankingData` (positive interactions, user and item tables);
the network and its losses are in :mod:`trainpipe.models.torch._two_tower_module`. Side features are encoded
here: numeric columns standardised (missing: the mean), strings with ``|`` split into tags, other strings
categorical codes (the 200 most frequent levels).

Saved as data only (no pickle): ``two_tower.json`` (ids, parameters, history), ``user_embeddings.npy``,
``item_embeddings.npy``, ``seen_ptr.npy``/``seen_items.npy`` (the interactions excluded from a user's
recommendations), ``popular.npy`` (item indices by training popularity: the fallback for unknown users) and
``two_tower.safetensors`` (the network's weights). Serving reads only the JSON and NumPy files (numpy, plus
``faiss`` for catalogues over ``exact_max_items``); torch is needed to train only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from trainpipe._exceptions import ConfigError, DataError
from trainpipe._imports import optional_import
from trainpipe.models import _family as fam
from trainpipe.models._params import Rule, check_params
from trainpipe.models._protocol import FitReport, RoundCallback

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from trainpipe.config import TrainingConfig
    from trainpipe.data import TaskInfo
    from trainpipe.data._interactions import RankingData

META_FILE = "two_tower.json"
WEIGHTS_FILE = "two_tower.safetensors"
ARRAYS = ("user_embeddings", "item_embeddings", "seen_ptr", "seen_items", "popular")
LOSSES = ("in_batch_softmax", "bpr", "triplet")
DEFAULTS: dict[str, Any] = {
    "embedding_dim": 64, "tower_layers": [64], "loss": "in_batch_softmax", "temperature": 0.05,
    "logq_correction": True, "n_negatives": 5, "hard_negatives": False, "margin": 0.2, "dropout": 0.0,
    "weight_decay": None, "k": 10, "monitor": "ndcg", "top_k": 10, "exact_max_items": 50_000, "keep_top_k": 3,
}
MONITORS = ("ndcg", "recall")
RULES = {"embedding_dim": Rule(int, 1), "temperature": Rule(float, 1e-4), "n_negatives": Rule(int, 1),
         "margin": Rule(float, 0.0), "dropout": Rule(float, 0.0, 1.0), "weight_decay": Rule(float, 0.0),
         "k": Rule(int, 1), "top_k": Rule(int, 1), "exact_max_items": Rule(int, 0), "keep_top_k": Rule(int, 1)}
MAX_LEVELS = 200


def _torch() -> Any:
    return optional_import("torch", "model.type two_tower", extra="torch")


def _layers(value: Any) -> list[int]:
    if isinstance(value, str):
        parts = [p for p in value.replace("-", ",").replace(" ", ",").split(",") if p]
        if not all(p.isdigit() for p in parts):
            raise ConfigError(f"model.params.tower_layers: expected a list of positive integers such as [128, 64], "
                              f"got {value!r}")
        value = [int(p) for p in parts]
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                                  for v in value):
        raise ConfigError(f"model.params.tower_layers: expected a list of positive integers such as [128, 64] "
                          f"(or [] for the embeddings alone), got {value!r}")
    return list(value)


def check_config(task_name: str, params: Mapping[str, Any], model_type: str = "two_tower") -> None:
    problems: list[str] = []
    try:
        check_params({k: v for k, v in params.items() if k not in ("tower_layers", "loss", "logq_correction",
                                                                   "hard_negatives", "monitor")},
                     DEFAULTS, RULES, "two_tower")
    except ConfigError as exc:
        problems.append(str(exc))
    if "tower_layers" in params:
        try:
            _layers(params["tower_layers"])
        except ConfigError as exc:
            problems.append(str(exc))
    loss = params.get("loss", "in_batch_softmax")
    if loss not in LOSSES:
        import difflib

        close = difflib.get_close_matches(str(loss), LOSSES, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        problems.append(f"model.params.loss: expected one of {', '.join(LOSSES)}, got {loss!r}.{hint}")
    if params.get("monitor", "ndcg") not in MONITORS:
        problems.append(f"model.params.monitor: expected one of {', '.join(MONITORS)} (what early stopping watches "
                        f"on the validation users), got {params['monitor']!r}")
    for key in ("logq_correction", "hard_negatives"):
        if not isinstance(params.get(key, False), bool):
            problems.append(f"model.params.{key}: expected true or false, got {params[key]!r}")
    dropout = params.get("dropout")
    if isinstance(dropout, int | float) and not isinstance(dropout, bool) and dropout >= 1.0:
        problems.append(f"model.params.dropout: expected a number >= 0 and < 1, got {dropout!r}")
    if problems:
        raise ConfigError("\n".join(problems))


def _ids_json(values: Sequence[Any]) -> tuple[list[Any], str]:
    """Ids as JSON values, and their kind (``int`` or ``str``)."""
    import numpy as np

    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return [int(v) for v in arr.tolist()], "int"
    if arr.dtype.kind == "f" and np.all(np.mod(arr, 1) == 0):
        return [int(v) for v in arr.tolist()], "int"
    return [str(v) for v in values], "str"


def coerce_ids(values: Any, kind: str) -> list[Any]:
    """Input ids in the model's id kind (a user id 12 read as 12.0 or "12" is user 12)."""
    out: list[Any] = []
    for v in values:
        if kind == "int":
            try:
                f = float(v)
                out.append(int(f) if f == f and f.is_integer() else v)
            except (TypeError, ValueError):
                out.append(v)
        else:
            out.append(None if v is None else str(v))
    return out


def encode_side(table: pd.DataFrame, columns: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """A tower's side features (see the module doc) as a TowerInputs, and how each column was read."""
    import numpy as np
    import pandas as pd

    torch = _torch()
    from trainpipe.models.torch._two_tower_module import TowerInputs

    n = len(table)
    numeric: list[np.ndarray] = []
    cats: list[np.ndarray] = []
    cards: list[int] = []
    tag_lists: list[list[list[str]]] = []
    kinds: dict[str, Any] = {}
    for col in columns:
        s = table[col]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            v = s.to_numpy(dtype=np.float64)
            mean = float(np.nanmean(v)) if np.isfinite(v).any() else 0.0
            v = np.where(np.isfinite(v), v, mean)
            std = float(v.std()) or 1.0
            numeric.append(((v - mean) / std).astype(np.float32))
            kinds[col] = "numeric"
            continue
        text = s.astype("string").fillna("")
        if bool(text.str.contains("|", regex=False).any()):
            tag_lists.append([[t for t in x.split("|") if t] for x in text.tolist()])
            kinds[col] = "tags"
            continue
        top = text.value_counts().index[:MAX_LEVELS]
        codes = pd.Categorical(text, categories=top).codes.astype(np.int64) + 1  # 0: other/unknown
        cats.append(codes)
        cards.append(len(top))
        kinds[col] = "categorical"
    tags_t = torch.zeros((n, 0), dtype=torch.long)
    n_tags = 0
    if tag_lists:
        merged = [sorted({t for lists in tag_lists for t in lists[i]}) for i in range(n)]
        vocab = {t: j + 1 for j, t in enumerate(sorted({t for row in merged for t in row}))}
        width = max((len(r) for r in merged), default=0) or 1
        arr = np.zeros((n, width), dtype=np.int64)
        for i, row in enumerate(merged):
            arr[i, :len(row)] = [vocab[t] for t in row]
        tags_t, n_tags = torch.from_numpy(arr), len(vocab) + 1
        kinds["_tags"] = sorted(vocab)
    inputs = TowerInputs(
        numeric=torch.from_numpy(np.column_stack(numeric)) if numeric else torch.zeros((n, 0)),
        categorical=torch.from_numpy(np.column_stack(cats)) if cats else torch.zeros((n, 0), dtype=torch.long),
        cardinalities=tuple(cards), tags=tags_t, n_tags=n_tags)
    return inputs, kinds


def _csr(users: np.ndarray, items: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """(pointers, items) of each user's items, users 0..n_users-1."""
    import numpy as np

    order = np.lexsort((items, users))
    counts = np.bincount(users, minlength=n_users)
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return ptr, items[order].astype(np.int64)


class TwoTowerAdapter:
    family: ClassVar[str] = "two_tower"

    def __init__(self, task: TaskInfo, model_type: str, params: Mapping[str, Any], training: TrainingConfig) -> None:
        check_config(task.task, params)
        self.task = task
        self.training = training
        self.arch: dict[str, Any] = {**DEFAULTS, **params}
        self.arch["tower_layers"] = _layers(self.arch["tower_layers"])
        self.checkpoint_dir: Path | None = None
        self.resume = False
        self.meta: dict[str, Any] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.net: Any = None
        self._index: Any = None
        self._lookup: dict[str, dict[Any, int]] = {}
        self._train_seen: tuple[np.ndarray, np.ndarray] | None = None

    def configure_checkpoints(self, directory: Path, resume: bool) -> None:
        self.checkpoint_dir = Path(directory)
        self.resume = resume

    # ------------------------------------------------------------------ training
    def fit(self, X: Any, y: Any, X_val: Any | None, y_val: Any | None,
            on_round: RoundCallback | None = None) -> FitReport:
        import numpy as np

        torch = _torch()
        from trainpipe.data._interactions import RankingData
        from trainpipe.models.torch._callbacks import MetricReporter
        from trainpipe.models.torch._data import TensorData
        from trainpipe.models.torch._engine import Engine
        from trainpipe.models.torch._setup import seed_everything
        from trainpipe.models.torch._two_tower_module import TwoTowerNet, TwoTowerSpec

        if not isinstance(X, RankingData):
            raise DataError(f"model.type two_tower learns from user-item interactions (task: ranking), got "
                            f"{type(X).__name__}; set task: ranking with data.user and data.item")
        train: RankingData = X
        user_ids = train.users[train.user].tolist()
        item_ids = train.items[train.item].tolist()
        u_index = {v: i for i, v in enumerate(user_ids)}
        i_index = {v: i for i, v in enumerate(item_ids)}
        if len(item_ids) < 2:
            raise DataError(f"data.item: the catalogue has {len(item_ids)} item(s); ranking needs at least 2")
        u = np.array(train.interactions[train.user].map(u_index).to_numpy(dtype=np.int64))
        it = np.array(train.interactions[train.item].map(i_index).to_numpy(dtype=np.int64))
        users_in, user_kinds = encode_side(train.users, train.user_features)
        items_in, item_kinds = encode_side(train.items, train.item_features)
        k = int(self.arch["k"])
        spec = TwoTowerSpec(
            n_users=len(user_ids), n_items=len(item_ids), embedding_dim=int(self.arch["embedding_dim"]),
            tower_layers=tuple(self.arch["tower_layers"]), loss=str(self.arch["loss"]),
            temperature=float(self.arch["temperature"]), logq_correction=bool(self.arch["logq_correction"]),
            n_negatives=int(self.arch["n_negatives"]), hard_negatives=bool(self.arch["hard_negatives"]),
            margin=float(self.arch["margin"]), dropout=float(self.arch["dropout"]), k=k,
            monitor=str(self.arch["monitor"]),
            user_numeric=int(users_in.numeric.shape[1]), user_cardinalities=users_in.cardinalities,
            user_tags=users_in.n_tags, item_numeric=int(items_in.numeric.shape[1]),
            item_cardinalities=items_in.cardinalities, item_tags=items_in.n_tags)
        counts = np.bincount(it, minlength=len(item_ids)).astype(np.float64)
        log_q = torch.from_numpy(np.log((counts + 1.0) / (counts + 1.0).sum()).astype(np.float32))
        keys = torch.from_numpy(np.unique(u * len(item_ids) + it))
        seed_everything(self.training.seed)
        net = TwoTowerNet(spec, users_in, items_in, log_q, keys)
        data = TensorData((torch.from_numpy(u), torch.from_numpy(it)), torch.zeros(len(u)))
        val_data = None
        seen_u, seen_i = u, it
        if isinstance(X_val, RankingData) and len(X_val.interactions):
            vu = X_val.interactions[train.user].map(u_index)
            vi = X_val.interactions[train.item].map(i_index)
            ok = vu.notna() & vi.notna()
            vu_a, vi_a = vu[ok].to_numpy(dtype=np.int64), vi[ok].to_numpy(dtype=np.int64)
            val_users = np.unique(vu_a)
            pos = np.searchsorted(val_users, vu_a)
            rel = _csr(pos, vi_a, len(val_users))
            in_val = np.isin(u, val_users)
            seen = _csr(np.searchsorted(val_users, u[in_val]), it[in_val], len(val_users))
            net.set_validation(torch.from_numpy(val_users), tuple(map(torch.from_numpy, seen)),
                               tuple(map(torch.from_numpy, rel)))
            val_data = TensorData((torch.arange(len(val_users)),), torch.zeros(len(val_users)))
            seen_u, seen_i = np.concatenate([u, vu_a]), np.concatenate([it, vi_a])
        reporting = [MetricReporter(on_epoch=on_round)] if on_round is not None else []
        engine = Engine(net, None, self.training, callbacks=reporting, weight_decay=self.arch["weight_decay"],
                        checkpoint_dir=self.checkpoint_dir, resume=self.resume,
                        keep_top_k=int(self.arch["keep_top_k"]))
        result = engine.fit(data, val_data)
        net = net.to("cpu").eval()
        self.net = net
        with torch.inference_mode():
            ue = torch.cat([net.users(torch.arange(s, min(s + 65536, spec.n_users)))
                            for s in range(0, spec.n_users, 65536)]).float().numpy()
            ie = net.all_items().float().numpy()
        self._train_seen = _csr(u, it, spec.n_users)  # what a validation ranking (tuning) excludes
        ptr, items = _csr(seen_u, seen_i, spec.n_users)
        popular = np.argsort(-counts, kind="stable")[: min(len(counts), 1000)].astype(np.int64)
        self.arrays = {"user_embeddings": np.ascontiguousarray(ue), "item_embeddings": np.ascontiguousarray(ie),
                       "seen_ptr": ptr, "seen_items": items, "popular": popular}
        uj, ukind = _ids_json(user_ids)
        ij, ikind = _ids_json(item_ids)
        self.meta = {"format": 1, "user": train.user, "item": train.item, "user_ids": uj, "user_id_kind": ukind,
                     "item_ids": ij, "item_id_kind": ikind, "spec": spec.to_dict(), "user_features": user_kinds,
                     "item_features": item_kinds, "top_k": int(self.arch["top_k"]),
                     "exact_max_items": int(self.arch["exact_max_items"]), "best_epoch": result.best_epoch,
                     "history": result.history,
                     "popular_share": (counts[popular] / max(counts.sum(), 1.0)).tolist()}
        self._lookup = {}
        self._index = None
        effective = {**{k2: v for k2, v in self.arch.items() if k2 != "tower_layers"},
                     "tower_layers": ",".join(map(str, self.arch["tower_layers"])),
                     **self.training.model_dump(exclude={"early_stopping_rounds"}), "device": str(engine.device),
                     "n_users": spec.n_users, "n_items": spec.n_items}
        best = None if result.best_epoch is None else result.best_epoch - 1
        notes = [f"resumed from checkpoint {result.resumed_from}"] if result.resumed_from else []
        notes.extend(result.notes)
        return FitReport(history=result.history, best_iteration=best, n_iterations=result.n_epochs,
                         params=effective, notes=notes)

    # ------------------------------------------------------------------ serving
    def _ids(self, which: str) -> dict[Any, int]:
        if which not in self._lookup:
            self._lookup[which] = {v: i for i, v in enumerate(self.meta[f"{which}_ids"])}
        return self._lookup[which]

    def user_positions(self, users: Any) -> np.ndarray:
        """Index of each user id (-1: unknown)."""
        import numpy as np

        lookup = self._ids("user")
        return np.array([lookup.get(v, -1) for v in coerce_ids(users, self.meta["user_id_kind"])], dtype=np.int64)

    def item_positions(self, items: Any) -> np.ndarray:
        import numpy as np

        lookup = self._ids("item")
        return np.array([lookup.get(v, -1) for v in coerce_ids(items, self.meta["item_id_kind"])], dtype=np.int64)

    @property
    def n_items(self) -> int:
        return len(self.meta["item_ids"])

    def uses_faiss(self) -> bool:
        return self.n_items > int(self.meta.get("exact_max_items", DEFAULTS["exact_max_items"]))

    def _faiss_index(self) -> Any:
        """An HNSW inner-product index over the item embeddings, built from the saved embeddings (no index
        file is ever read: an index file is not data the loader can check)."""
        if self._index is None:
            faiss = optional_import("faiss", "a two_tower model with a catalogue over exact_max_items items",
                                    extra="ranking")
            emb = self.arrays["item_embeddings"]
            index = faiss.IndexHNSWFlat(emb.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 200
            index.add(emb)
            index.hnsw.efSearch = 256
            self._index = index
        return self._index

    def top_k(self, users: Any, k: int, *, exclude_seen: bool = True, use_faiss: bool | None = None,
              seen: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(item ids, scores, known) for each user: the k best items (seen ones excluded: ``seen``, a CSR of
        items per user index, else the training and validation interactions saved with the model), as an object
        array (users x k); unknown users get the most popular items and ``known`` False."""
        import numpy as np

        pos = self.user_positions(users)
        n = len(pos)
        k = max(1, min(int(k), self.n_items))
        ids = np.asarray(self.meta["item_ids"], dtype=object)
        out_idx = np.zeros((n, k), dtype=np.int64)
        out_score = np.full((n, k), np.nan)
        known = pos >= 0
        popular = self.arrays["popular"]
        share = np.asarray(self.meta.get("popular_share", []), dtype=np.float64)
        pop_k = popular[:k]
        out_idx[~known, : len(pop_k)] = pop_k
        out_score[~known, : len(pop_k)] = share[: len(pop_k)] if len(share) >= len(pop_k) else np.nan
        rows = np.nonzero(known)[0]
        faiss_on = self.uses_faiss() if use_faiss is None else use_faiss
        ptr, seen_items = seen if seen is not None else (self.arrays["seen_ptr"], self.arrays["seen_items"])
        ue, ie = self.arrays["user_embeddings"], self.arrays["item_embeddings"]
        for start in range(0, len(rows), 4096):
            chunk = rows[start:start + 4096]
            up = pos[chunk]
            if faiss_on:
                extra = int((ptr[up + 1] - ptr[up]).max()) if exclude_seen and len(up) else 0
                want = min(self.n_items, k + extra)
                scores_c, idx_c = self._faiss_index().search(np.ascontiguousarray(ue[up]), want)
                for r, (sc, ix, u) in enumerate(zip(scores_c, idx_c, up, strict=True)):
                    drop = set(seen_items[ptr[u]:ptr[u + 1]].tolist()) if exclude_seen else set()
                    keep = [(s, i) for s, i in zip(sc.tolist(), ix.tolist(), strict=True) if i >= 0 and i not in drop]
                    keep = keep[:k]
                    out_idx[chunk[r], :len(keep)] = [i for _, i in keep]
                    out_score[chunk[r], :len(keep)] = [s for s, _ in keep]
                continue
            scores = ue[up] @ ie.T
            if exclude_seen:
                lengths = ptr[up + 1] - ptr[up]
                which = np.repeat(np.arange(len(up)), lengths)
                cols = np.concatenate([seen_items[ptr[u]:ptr[u + 1]] for u in up]) if len(up) else np.zeros(0, int)
                scores[which, cols] = -np.inf
            part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
            best = np.take_along_axis(part, order, axis=1)
            out_idx[chunk] = best
            out_score[chunk] = np.take_along_axis(scores, best, axis=1)
        out_score[~np.isfinite(out_score)] = np.nan
        return ids[out_idx], out_score, known

    def score_pairs(self, users: Any, items: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores, known user, known item) of (user, item) pairs; NaN where either is unknown."""
        import numpy as np

        up, ip = self.user_positions(users), self.item_positions(items)
        ok = (up >= 0) & (ip >= 0)
        scores = np.full(len(up), np.nan)
        ue, ie = self.arrays["user_embeddings"], self.arrays["item_embeddings"]
        scores[ok] = np.einsum("nd,nd->n", ue[up[ok]], ie[ip[ok]])
        return scores, up >= 0, ip >= 0

    # ModelAdapter protocol: predict = the top items of each user in a frame with the user column; for
    # RankingData (a validation split: tuning), its users in first-seen order, the top 100 with only the training
    # items excluded, as the ranking metrics read them
    def predict(self, X: Any) -> np.ndarray:
        from trainpipe.data._interactions import RankingData

        if isinstance(X, RankingData):
            users = list(dict.fromkeys(X.interactions[X.user].tolist()))
            items, _, _ = self.top_k(users, 100, seen=self._train_seen)
            return items
        items, _, _ = self.top_k(X[self.meta["user"]].tolist(), int(self.meta["top_k"]))
        return items

    def predict_proba(self, X: Any) -> np.ndarray | None:
        return None

    def feature_importances(self) -> np.ndarray | None:
        return None

    # ------------------------------------------------------------------ files
    def save(self, directory: Path) -> None:
        import numpy as np

        directory.mkdir(parents=True, exist_ok=True)
        for name in ARRAYS:
            np.save(directory / f"{name}.npy", self.arrays[name], allow_pickle=False)
        (directory / META_FILE).write_text(json.dumps({**self.meta, "arch": self.arch}, indent=1, default=str))
        if self.net is not None:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, str(directory / WEIGHTS_FILE))
        if self.meta.get("history"):
            from trainpipe.models.torch._plots import loss_curve_png

            loss_curve_png(self.meta["history"], directory / "loss_curve.png", self.meta.get("best_epoch"))

    @classmethod
    def load(cls, directory: Path, task: TaskInfo, model_type: str) -> TwoTowerAdapter:
        import numpy as np

        directory = Path(directory)
        meta = json.loads((directory / META_FILE).read_text())
        self = cls.__new__(cls)
        self.task, self.meta, self.arch = task, meta, dict(meta.get("arch", {}))
        self.checkpoint_dir, self.resume, self.training, self.net = None, False, None, None  # type: ignore[assignment]
        self.arrays = {name: np.load(directory / f"{name}.npy", allow_pickle=False) for name in ARRAYS}
        n_users, n_items = len(meta["user_ids"]), len(meta["item_ids"])
        if self.arrays["user_embeddings"].shape[0] != n_users or self.arrays["item_embeddings"].shape[0] != n_items:
            raise DataError(f"{directory}: the embeddings do not match the id lists of {META_FILE}; the folder is "
                            "damaged. Train the model again.")
        self._index, self._lookup, self._train_seen = None, {}, None
        return self


# -- the family declaration (see trainpipe.models._family) -----------------------------------------------------


def _adapter() -> type:
    return TwoTowerAdapter


def _epochs(params: Mapping[str, Any], training: TrainingConfig) -> int:
    return int(training.epochs)


def _training_settings(every: frozenset[str]) -> frozenset[str]:
    return every - {"early_stopping_rounds"}


def _training_hint(model_type: str, setting: str) -> str | None:
    if setting == "early_stopping_rounds":
        return ("it stops after training.early_stopping_patience epochs without a better validation NDCG: tune "
                "training.early_stopping_patience instead")
    return None


def _requirements() -> list[str]:
    return fam.installed_pins(("faiss-cpu",), first_only=True)


FAMILY = fam.ModelFamily(
    name="two_tower", names=("two_tower",), adapter=_adapter, extra="ranking", libraries=("torch", "faiss-cpu"),
    requirements=_requirements, tasks=("ranking",), input_kind="tensors",
    default_space={
        "embedding_dim": {"type": "categorical", "choices": [32, 64, 128]},
        "tower_layers": {"type": "categorical", "choices": ["64", "128,64", "256,128"]},
        "temperature": {"type": "float", "low": 0.02, "high": 0.3, "log": True},
        "training.learning_rate": {"type": "float", "low": 3e-4, "high": 1e-2, "log": True},
        "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
    },
    round_budget=_epochs, check_config=check_config, checkpoints=True, refit_on_train_val=False, gpu=True,
    training_settings=_training_settings, training_hint=_training_hint,
    owned_params={"keep_top_k": "it says how many checkpoints are kept, not what is learned. Remove it from "
                                "tuning.space; set it in model.params",
                  "top_k": "it is how many items predict returns, not what is learned. Set it in model.params",
                  "monitor": "it chooses what early stopping watches, not what is learned. Set it in model.params",
                  "exact_max_items": "it chooses exact or FAISS search at serving time. Set it in model.params"},
)
