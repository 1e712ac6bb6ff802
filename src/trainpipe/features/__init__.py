"""Feature columns and the sklearn preprocessing that travels inside the model."""

from trainpipe.features._preprocess import build_preprocessor, feature_names
from trainpipe.features._spec import FeatureSpec, infer_feature_spec, prepare_frame

__all__ = ["FeatureSpec", "build_preprocessor", "feature_names", "infer_feature_spec", "prepare_frame"]
