"""Text columns: the TF-IDF step inside the fitted preprocessor, and which string columns are free text.

Every model family can take ``features.text`` columns: each becomes a ``FeatureUnion`` of two
``TfidfVectorizer`` (word 1-2-grams and character 3-5-grams within word boundaries, sublinear tf, float32),
so the registered model takes the raw text and the matrix stays ``scipy.sparse`` all the way into the model
(XGBoost and LightGBM train on CSR matrices; nothing densifies it). Families that read the raw text
themselves (``ModelFamily.input_kind == "text"``, e.g. ``text_encoder``) get the column passed through as
strings instead.

Inference (no ``features`` lists declared): a string column whose values are long and mostly distinct
(:func:`trainpipe.data._text_checks.looks_like_text`) is a text column, never one-hot encoded; the
validation report notes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainpipe.config import FeaturesConfig

WORD_NGRAMS = (1, 2)
CHAR_NGRAMS = (3, 5)


def text_options(fc: FeaturesConfig) -> dict[str, Any]:
    """``features.text_options`` as plain values (defaults where the config has no such section)."""
    opts = getattr(fc, "text_options", None)
    if opts is None:
        return {"analyzer": "word+char", "max_features": 20000, "min_df": 2, "sublinear_tf": True}
    return {"analyzer": opts.analyzer, "max_features": opts.max_features, "min_df": opts.min_df,
            "sublinear_tf": opts.sublinear_tf}


def tfidf_transformer(fc: FeaturesConfig) -> Any:
    """The TF-IDF step for one text column: word and/or character n-grams, per ``features.text_options``."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    opts = text_options(fc)
    common = {"max_features": opts["max_features"], "min_df": opts["min_df"], "sublinear_tf": opts["sublinear_tf"],
              "dtype": np.float32, "lowercase": True, "strip_accents": "unicode"}
    parts: list[tuple[str, Any]] = []
    if opts["analyzer"] in ("word+char", "word"):
        parts.append(("word", TfidfVectorizer(analyzer="word", ngram_range=WORD_NGRAMS, **common)))
    if opts["analyzer"] in ("word+char", "char"):
        parts.append(("char", TfidfVectorizer(analyzer="char_wb", ngram_range=CHAR_NGRAMS, **common)))
    return parts[0][1] if len(parts) == 1 else FeatureUnion(parts)


def text_transformers(columns: tuple[str, ...], fc: FeaturesConfig, raw: bool) -> list[tuple[str, Any, Any]]:
    """The ColumnTransformer entries for the text columns: one TF-IDF step per column, or (``raw``) one
    passthrough of all of them as strings, after every other block (a raw-text family finds them last)."""
    if not columns:
        return []
    if raw:
        from sklearn.impute import SimpleImputer

        # the strings as they are ('' where missing): a plain imputer, which skops stores as data ("passthrough"
        # is stored as a FunctionTransformer, which no trainpipe model file may hold)
        keep = SimpleImputer(strategy="constant", fill_value="", keep_empty_features=True)
        return [("text", keep, list(columns))]
    return [(f"text_{col}", tfidf_transformer(fc), col) for col in columns]




def compact_vocabularies(preprocessor: Any) -> None:
    """Make each fitted TF-IDF vocabulary a plain ``{term: int}`` dict (scikit-learn leaves NumPy integers in
    it after ``max_features``/``min_df`` pruning, and skops writes each of those as its own object: a 40,000-term
    vocabulary then took 84 s to write instead of 22 s). Values and term order are unchanged."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    stack = [preprocessor]
    while stack:
        obj = stack.pop()
        if isinstance(obj, TfidfVectorizer) and isinstance(getattr(obj, "vocabulary_", None), dict):
            obj.vocabulary_ = {str(term): int(i) for term, i in obj.vocabulary_.items()}
            continue
        for attr in ("transformers_", "transformer_list", "steps"):
            for entry in getattr(obj, attr, None) or ():
                stack.append(entry[1])


__all__ = ["compact_vocabularies", "text_options", "text_transformers", "tfidf_transformer"]
