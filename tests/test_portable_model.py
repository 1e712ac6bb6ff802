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
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_frame, write_pipeline

REPO = Path(__file__).resolve().parents[1]

PIPELINE = """\
name: portable
data: {{source: data.csv, target: label}}
model: {{type: {model}, params: {params}}}
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


def cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainpipe.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=_env(**env))


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


def test_load_hints_use_an_absolute_store_uri_mask_passwords_and_name_the_alias(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainpipe.registry._views import absolute_store_uri, load_hints, model_uri

    monkeypatch.chdir(tmp_path)
    assert absolute_store_uri("sqlite:///.trainpipe/mlflow.db") == f"sqlite:///{tmp_path}/.trainpipe/mlflow.db"
    assert absolute_store_uri("sqlite:////abs/m.db") == "sqlite:////abs/m.db"
    assert absolute_store_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert model_uri("churn", "3", "churn", ["staging", "production"]) == "models:/churn@production"
    assert model_uri("churn", "3", "churn@staging", ["staging", "production"]) == "models:/churn@staging"
    assert model_uri("churn", "3", "churn/3", ["production"]) == "models:/churn/3"
    assert model_uri("churn", "3", "churn", []) == "models:/churn/3"
    hints = load_hints("postgresql+psycopg://ml:s3cret@db:5432/mlflow", "models:/churn@production")
    text = "\n".join(hints)
    assert "s3cret" not in text and "postgresql+psycopg://ml:***@db:5432/mlflow" in text
    assert "the password is masked" in text
    code = hints[1]
    assert code.splitlines()[0] == "import mlflow" and "mlflow.pyfunc.load_model('models:/churn@production')" in code
    compile(code, "hint", "exec")  # valid Python as printed


# --- slow: four registered models, a clean environment, mlflow models serve ----------------------------------


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One store with port_xgboost, port_lightgbm, port_sklearn and port_torch @staging, and each one's
    ``trainpipe predict`` output for ``score.csv`` (``pred_NAME.csv``)."""
    work = tmp_path_factory.mktemp("portable")
    make_frame(n=600, seed=2).to_csv(work / "data.csv", index=False)
    make_frame(n=40, seed=9).drop(columns=["label"]).to_csv(work / "score.csv", index=False)
    for name, (model, params) in MODELS.items():
        training = "training: {epochs: 4, batch_size: 64, seed: 3}\n" if model == "torch_mlp" else ""
        write_pipeline(work, PIPELINE.format(model=model, params=params, name=name) + training, f"{name}.yaml")
        run = cli(work, "run", f"{name}.yaml")
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
        pred = cli(work, "predict", f"models:/{name}@staging", "score.csv", "-o", f"pred_{name}.csv")
        assert pred.returncode == 0, pred.stderr[-3000:]
    return work


def _store(work: Path) -> str:
    return f"sqlite:///{work}/.trainpipe/mlflow.db"


def _requirements(work: Path) -> list[Path]:
    """Each registered model's requirements.txt, as MLflow hands it out."""
    script = ("import mlflow, sys\nmlflow.set_tracking_uri(sys.argv[1])\n"
              "for name in sys.argv[2:]:\n"
              "    print(mlflow.pyfunc.get_model_dependencies(f'models:/{name}@staging'))\n")
    done = subprocess.run([sys.executable, "-c", script, _store(work), *MODELS], cwd=work, capture_output=True,
                          text=True, timeout=300, env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    return [Path(line) for line in done.stdout.split() if line.endswith("requirements.txt")]


def _clean_venv(requirements: list[Path]) -> Path:
    """A virtual environment holding exactly these requirements (plus the repository's constraints.txt, which
    keeps torch the CPU build), without trainpipe; cached by the requirements' content."""
    lines = sorted({ln.strip() for f in requirements for ln in f.read_text().splitlines() if ln.strip()})
    constraints = REPO / "constraints.txt"
    key = hashlib.sha256(json.dumps([lines, constraints.read_text(), sys.version]).encode()).hexdigest()[:12]
    venv = REPO / ".cache" / f"portable-venv-{key}"
    python = venv / "bin" / "python"
    if (venv / ".complete").is_file():
        return venv
    shutil.rmtree(venv, ignore_errors=True)  # a half-built one from an interrupted run
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=300)
    args = [a for f in requirements for a in ("-r", str(f))]
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", *args, "-c", str(constraints)],
                          capture_output=True, text=True, timeout=1200, env=_env())
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    (venv / ".complete").write_text("\n".join(lines) + "\n")
    return venv


@pytest.fixture(scope="module")
def clean_venv(registered: Path) -> Path:
    requirements = _requirements(registered)
    assert len(requirements) == len(MODELS)
    for f in requirements:
        assert not [ln for ln in f.read_text().splitlines() if ln.lower().startswith("trainpipe")], f.read_text()
    venv = _clean_venv(requirements)
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import trainpipe"], cwd=venv, capture_output=True,
                           text=True, env=_env())
    assert probe.returncode != 0 and "No module named 'trainpipe'" in probe.stderr
    return venv


def _compare(work: Path, name: str, got: pd.DataFrame) -> None:
    expected = pd.read_csv(work / f"pred_{name}.csv")
    cols = [c for c in expected.columns if c == "prediction" or c.startswith("proba_")]
    assert list(got.columns) == cols, name
    assert got["prediction"].astype(str).tolist() == expected["prediction"].astype(str).tolist(), name
    for col in cols[1:]:
        np.testing.assert_allclose(got[col].to_numpy(float), expected[col].to_numpy(float), rtol=1e-6,
                                   err_msg=f"{name}: {col}")


@pytest.mark.slow
def test_registered_models_load_and_predict_in_a_clean_environment_without_trainpipe(
        registered: Path, clean_venv: Path, tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import sys
        import mlflow
        import pandas as pd
        mlflow.set_tracking_uri(sys.argv[1])
        raw = pd.read_csv(sys.argv[2])
        for name in sys.argv[4:]:
            model = mlflow.pyfunc.load_model(f"models:/{name}@staging")
            model.predict(raw).to_csv(f"{sys.argv[3]}/clean_{name}.csv", index=False)
        print(sorted(m for m in sys.modules if m.split(".")[0] == "trainpipe"))
    """)
    done = subprocess.run([str(clean_venv / "bin" / "python"), "-c", script, _store(registered),
                           str(registered / "score.csv"), str(tmp_path), *MODELS],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, env=_env())
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.strip() == "[]"
    for name in MODELS:
        _compare(registered, name, pd.read_csv(tmp_path / f"clean_{name}.csv"))
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


@pytest.mark.slow
def test_bundled_code_loads_beside_an_installed_trainpipe(registered: Path, tmp_path: Path) -> None:
    """Where trainpipe is installed (and already imported), the pyfunc model still runs its own bundled code
    and leaves trainpipe's modules alone."""
    script = textwrap.dedent("""
        import sys
        import mlflow
        import pandas as pd
        import trainpipe.models._trained as installed
        mlflow.set_tracking_uri(sys.argv[1])
        model = mlflow.pyfunc.load_model("models:/port_lightgbm@staging")
        model.predict(pd.read_csv(sys.argv[2])).to_csv(sys.argv[3], index=False)
        assert sys.modules["trainpipe.models._trained"] is installed
        print(sorted({m.split(".")[0] for m in sys.modules if m.startswith("trainpipe")}))
    """)
    done = subprocess.run([sys.executable, "-c", script, _store(registered), str(registered / "score.csv"),
                           str(tmp_path / "out.csv")], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=_env())
    assert done.returncode == 0, done.stderr[-4000:]
    roots = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert roots[0] == "trainpipe" and len(roots) == 2 and roots[1].startswith("trainpipe_inference_")
    _compare(registered, "port_lightgbm", pd.read_csv(tmp_path / "out.csv"))


@pytest.mark.slow
def test_models_show_prints_load_code_that_works_verbatim_from_another_folder(
        registered: Path, clean_venv: Path, tmp_path: Path) -> None:
    shown = cli(registered, "models", "show", "port_xgboost")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    start = lines.index("import mlflow")
    end = next(i for i, ln in enumerate(lines) if ln.startswith("model = mlflow.pyfunc.load_model("))
    code = "\n".join(lines[start:end + 1])
    assert "mlflow.set_tracking_uri('sqlite:////" in code and "'models:/port_xgboost@staging'" in code
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    check = code + ("\nimport pandas as pd\n"
                    f"model.predict(pd.read_csv({str(registered / 'score.csv')!r})).to_csv('out.csv', index=False)\n")
    done = subprocess.run([str(clean_venv / "bin" / "python"), "-c", check], cwd=elsewhere, capture_output=True,
                          text=True, timeout=300, env=_env())
    assert done.returncode == 0, done.stderr[-4000:]
    _compare(registered, "port_xgboost", pd.read_csv(elsewhere / "out.csv"))
    assert sorted(p.name for p in elsewhere.iterdir()) == ["out.csv"]  # no stray mlflow.db
    serve = next(ln for ln in lines if " mlflow models serve -m " in ln)
    assert serve.startswith(f"MLFLOW_TRACKING_URI={_store(registered)} ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _serving(venv: Path, work: Path, ref: str, port: int) -> Iterator[subprocess.Popen[str]]:
    log = open(work / f"serve-{port}.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([str(venv / "bin" / "mlflow"), "models", "serve", "-m", ref, "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port), "-w", "1"], cwd=work, stdout=log,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            # as in an activated environment: MLflow starts `uvicorn` by name
                            env=_env(MLFLOW_TRACKING_URI=_store(work), VIRTUAL_ENV=str(venv),
                                     PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"))
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
        log.close()


@pytest.mark.slow
def test_mlflow_models_serve_from_the_clean_environment_answers_invocations(
        registered: Path, clean_venv: Path) -> None:
    port = _free_port()
    raw = pd.read_csv(registered / "score.csv")
    body = json.dumps({"dataframe_split": json.loads(raw.to_json(orient="split", index=False))}).encode()
    with _serving(clean_venv, registered, "models:/port_xgboost@staging", port) as proc:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, (registered / f"serve-{port}.log").read_text()[-4000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (registered / f"serve-{port}.log").read_text()[-4000:]
            time.sleep(1)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            answer = json.loads(r.read())
    _compare(registered, "port_xgboost", pd.DataFrame(answer["predictions"]))
