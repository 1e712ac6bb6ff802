"""A registered model loads and serves where trainpipe is not installed (issue 16), and the load code that
``models show`` prints works as printed.

The slow tests register four models (xgboost, lightgbm, scikit-learn, torch_mlp) in one embedded store, then
build a clean virtual environment holding exactly the union of the models' ``requirements.txt`` (no
trainpipe), load each ``models:/NAME@staging`` there with ``mlflow.pyfunc`` and compare with
``trainpipe predict``; one model is also served with ``mlflow models serve`` and queried over HTTP.
The clean environment is cached in ``.cache/portable-venv-<hash of the requirements>``: the first run
installs torch (about a minute), later runs reuse it.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd

from tests.conftest import make_frame

REPO = Path(__file__).resolve().parents[1]

PIPELINE = """\
name: portable
data: {{source: data.csv, target: label}}
model: {{type: {model}, params: {params}}}
training: {{epochs: 4, batch_size: 64, seed: 3}}
evaluation: {{latency: false}}
registry: {{model_name: {name}, promote: staging}}
"""

MODELS = {
    "port_xgboost": ("xgboost", "{n_estimators: 20, max_depth: 3}"),
    "port_lightgbm": ("lightgbm", "{n_estimators: 20, num_leaves: 7, verbose: -1}"),
    "port_sklearn": ("sklearn.linear_model.LogisticRegression", "{max_iter: 500}"),
    "port_torch": ("torch_mlp", "{hidden_dims: [16, 8]}"),
}

# never in a served model's environment: trainpipe's CLI, config and tuning stack
NOT_FOR_INFERENCE = ("typer", "rich", "pydantic", "yaml", "optuna", "mlflow", "pandera", "trainpipe")
# blocked while the bundle loads and predicts (rich is not: xgboost and skops import it themselves)
BLOCKED = tuple(m for m in NOT_FOR_INFERENCE if m != "rich")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI", "VIRTUAL_ENV")}
    return {**env, "MLFLOW_DISABLE_TELEMETRY": "true", "COLUMNS": "250", **extra}


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainpipe.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=_env())


# --- fast: what the bundle and the requirements hold ---------------------------------------------------------


def test_requirements_list_only_installable_pins_and_never_trainpipe() -> None:
    from trainpipe.registry._package import pip_requirements

    for family, lib in (("xgboost", "xgboost"), ("lightgbm", "lightgbm"), ("torch", "torch"), ("sklearn", None)):
        reqs = pip_requirements(family)
        names = [r.split("==")[0] for r in reqs]
        assert all("==" in r and "+" not in r for r in reqs), reqs  # exact versions, no local "+cpu" label
        assert not any(n.startswith("trainpipe") for n in names), reqs
        assert {"mlflow", "scikit-learn", "skops", "pandas", "numpy"} <= set(names)
        if lib is not None:
            assert sum(lib in n for n in names) == 1, reqs  # xgboost-cpu or xgboost, never both


def test_bundled_inference_code_is_renamed_and_imports_no_cli_or_config_stack(tmp_path: Path) -> None:
    from trainpipe.registry._package import CODE_CONFIG_KEY, inference_modules, write_inference_code

    assert _wrapper_key() == CODE_CONFIG_KEY  # the wrapper (which cannot import trainpipe) agrees
    modules = inference_modules()
    assert modules["trainpipe.models._trained"] and modules["trainpipe.registry._predict"]
    assert not modules["trainpipe"] and not modules["trainpipe.registry"]  # stub packages: no CLI, no mlflow
    name = write_inference_code(tmp_path)
    assert name.startswith("trainpipe_inference_")
    assert write_inference_code(tmp_path / "again") == name  # named by content: the same code, the same name
    files = sorted((tmp_path / name).rglob("*.py"))
    assert len(files) == len(modules)
    for path in files:
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level: what importing the bundled module costs
            if isinstance(node, ast.Import | ast.ImportFrom):
                roots = [a.name.split(".")[0] for a in node.names] if isinstance(node, ast.Import) \
                    else [(node.module or "").split(".")[0]]
                assert not set(roots) & set(NOT_FOR_INFERENCE), (path, ast.unparse(node))
        for sub in ast.walk(tree):  # anywhere: every trainpipe import points into the bundle
            if isinstance(sub, ast.ImportFrom) and not sub.level:
                assert not (sub.module or "").startswith("trainpipe."), (path, ast.unparse(sub))


def test_bundle_loads_in_a_process_without_trainpipe_and_predicts_like_trainpipe(tmp_path: Path) -> None:
    """The bundled package alone loads a model directory and predicts, with trainpipe and the CLI/config stack
    (typer, pydantic, yaml, optuna, mlflow, pandera) blocked from import."""
    from trainpipe.models import TrainedModel
    from trainpipe.registry._package import write_inference_code
    from trainpipe.registry._predict import predict_frame

    model_dir = _small_model_dir(tmp_path)
    name = write_inference_code(tmp_path / "code")
    raw = make_frame(n=30, seed=5).drop(columns=["label"])
    raw.to_parquet(tmp_path / "raw.parquet")
    script = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {BLOCKED!r}:
                    raise ImportError(name + " is blocked in this test")
        sys.meta_path.insert(0, Block())
        sys.path.insert(0, {str(tmp_path / "code")!r})
        import pandas as pd
        from {name}.models._trained import TrainedModel
        from {name}.registry._predict import predict_frame
        model = TrainedModel.load({str(model_dir)!r})
        predict_frame(model, pd.read_parquet({str(tmp_path / "raw.parquet")!r})).to_parquet(sys.argv[1])
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "out.parquet")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env=_env())
    assert done.returncode == 0, done.stderr
    expected = predict_frame(TrainedModel.load(model_dir), raw)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out.parquet"), expected)


def _small_model_dir(tmp_path: Path) -> Path:
    from trainpipe.config import config_from_dict
    from trainpipe.data import infer_task
    from trainpipe.features import build_preprocessor, infer_feature_spec, prepare_frame
    from trainpipe.models import ModelSpec, TrainedModel, create_adapter, family_of

    df = make_frame(300, seed=3)
    cfg = config_from_dict({"name": "t", "data": {"source": "a.csv", "target": "label"},
                            "model": {"type": "xgboost", "params": {"n_estimators": 10}}}).config
    info = infer_task(df["label"], "binary", None, "label")
    spec = infer_feature_spec(df, cfg)
    pre = build_preprocessor(spec, cfg.features).fit(prepare_frame(df, spec))
    adapter = create_adapter(info, cfg.model, cfg.training)
    x = pre.transform(prepare_frame(df, spec))
    adapter.fit(x, info.encode(df["label"]), x, info.encode(df["label"]), lambda i, total, m: None)
    TrainedModel(ModelSpec("xgboost", family_of("xgboost"), info, spec), pre, adapter).save(tmp_path / "model")
    return tmp_path / "model"


def _wrapper_key() -> str:
    """``CODE_CONFIG_KEY`` as written in the pyfunc wrapper, which cannot be imported here (importing it calls
    ``mlflow.models.set_model``)."""
    from trainpipe.registry import _package

    source = (Path(_package.__file__).parent / "_pyfunc_model.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "CODE_CONFIG_KEY":
            return str(ast.literal_eval(node.value))
    raise AssertionError("no CODE_CONFIG_KEY in _pyfunc_model.py")
