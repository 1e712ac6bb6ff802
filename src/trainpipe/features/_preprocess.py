"""Build the sklearn ColumnTransformer from the config; fitted on the train split only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sklearn.compose import ColumnTransformer

    from trainpipe.config import FeaturesConfig
    from trainpipe.features._spec import FeatureSpec

_MISSING = "__missing__"


def build_preprocessor(spec: FeatureSpec, fc: FeaturesConfig, raw_text: bool = False) -> ColumnTransformer:
    """The ColumnTransformer: numeric, categorical, then text blocks (TF-IDF, see :mod:`._text`; with
    ``raw_text`` the text columns pass through as strings, for a family that reads text itself). With text
    columns the output stays sparse (``sparse_threshold=1``) unless the text passes through raw."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    transformers: list[tuple[str, Any, Any]] = []
    if spec.numeric:
        if fc.numeric_impute == "zero":
            imputer = SimpleImputer(strategy="constant", fill_value=0.0, keep_empty_features=True)
        else:
            imputer = SimpleImputer(strategy=fc.numeric_impute, keep_empty_features=True)
        steps: list[tuple[str, Any]] = [("impute", imputer)]
        if fc.scale == "standard":
            steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(steps), list(spec.numeric)))
    if spec.categorical:
        encoder: Any
        if fc.categorical_encoding == "onehot":
            encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=fc.max_categories,
                                    sparse_output=False, dtype=np.float32)
        else:
            encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                     max_categories=fc.max_categories, dtype=np.float32)
        cat = Pipeline([("impute", SimpleImputer(strategy="constant", fill_value=_MISSING)),
                        ("encode", encoder)])
        transformers.append(("categorical", cat, list(spec.categorical)))
    from trainpipe.features._text import text_transformers

    transformers.extend(text_transformers(spec.text, fc, raw_text))
    sparse_threshold = 1.0 if spec.text and not raw_text else 0.3
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=sparse_threshold, n_jobs=None,
                             verbose_feature_names_out=True)


def feature_names(preprocessor: ColumnTransformer) -> list[str]:
    try:
        return [str(n) for n in preprocessor.get_feature_names_out()]
    except (AttributeError, ValueError):
        return []
