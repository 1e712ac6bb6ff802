"""Every built-in model family passes the shipped conformance kit, ``trainpipe.testing.check_family``."""

from __future__ import annotations

from typing import Any

import pytest

from trainpipe.models import families, family_for
from trainpipe.testing import FamilyCheckFailed, check_family

SKLEARN_TYPES = {"binary": "sklearn.linear_model.LogisticRegression",
                 "multiclass": "sklearn.ensemble.RandomForestClassifier",
                 "regression": "sklearn.linear_model.Ridge"}
SETTINGS: dict[str, dict[str, Any]] = {
    "xgboost": {"params": {"n_estimators": 15}, "training": {"early_stopping_rounds": 5}},
    "lightgbm": {"params": {"n_estimators": 15, "min_child_samples": 5}, "training": {"early_stopping_rounds": 5}},
    "torch": {"params": {"hidden_dims": [16]}, "training": {"epochs": 3, "batch_size": 32}},
    "sklearn": {"model_types": SKLEARN_TYPES},
}


def test_every_builtin_family_is_found_through_the_registry() -> None:
    assert {f.name for f in families()} >= {"xgboost", "lightgbm", "torch", "sklearn"}
    assert family_for("torch_mlp").name == "torch" and family_for("sklearn.svm.SVC").name == "sklearn"


@pytest.mark.parametrize("name", [
    "xgboost", "lightgbm", "sklearn", pytest.param("torch", marks=pytest.mark.slow)])
def test_builtin_family_conforms(name: str) -> None:
    family = next(f for f in families() if f.name == name)
    done = check_family(family, **SETTINGS[name])
    for task in family.tasks:
        assert f"{task}: registered pyfunc round trip" in done
        assert f"{task}: same seed, same predictions" in done
    assert any("pruning reporter" in d for d in done) == (family.round_budget is not None)
    assert any("checkpoint and resume" in d for d in done) == family.checkpoints


def test_a_family_whose_check_config_accepts_what_construction_refuses_fails_the_kit() -> None:
    """The kit catches a family whose declared config check lets an unknown parameter through."""
    import dataclasses

    lenient = dataclasses.replace(family_for("xgboost"), check_config=lambda task, params, model_type: None)
    from trainpipe.models._families import BUILTIN_ENTRIES, _builtin

    assert "xgboost" in BUILTIN_ENTRIES and _builtin("xgboost").name == "xgboost"
    with pytest.raises(FamilyCheckFailed, match=r"check_config: check_config accepted the unknown parameter"):
        check_family(lenient, pyfunc=False, **SETTINGS["xgboost"])


def test_check_family_leaves_no_bundle_module_pointing_at_its_deleted_folder() -> None:
    """check_family loads the registered pyfunc from a temporary folder: after it, a model saved with the same
    bundled code must still load in this process (its lazily imported modules were looked up in the deleted
    folder: ModuleNotFoundError ...features._fast)."""
    import sys
    from pathlib import Path

    check_family(next(f for f in families() if f.name == "sklearn"), **SETTINGS["sklearn"])
    dangling = [name for name, module in sys.modules.items() if name.startswith("trainpipe_inference_")
                and getattr(module, "__file__", None) and not Path(module.__file__).exists()]
    assert not dangling
