"""The fixed lists of what a ``model.type`` may name and what a model file may hold.

Nothing here is read from a config or a model file: the names are in the code, and the only modules
imported are the scikit-learn/numpy modules named below.

* :data:`SKLEARN_CLASSIFIERS` / :data:`SKLEARN_REGRESSORS`: the public paths of the estimators that
  ``sklearn.utils.all_estimators(type_filter="classifier"/"regressor")`` returns (scikit-learn 1.9), less
  those trainpipe cannot train from a YAML file (:data:`NOT_TRAINABLE` says why). A fixed table rather than
  a call to ``all_estimators`` at run time: that call imports every scikit-learn module (and torch through
  its array-API shims), 1.6 s in each ``validate``. ``tests/test_model_security.py`` checks that the table
  still matches ``all_estimators`` of the installed scikit-learn.
* :func:`trusted_types`: the exact type names a skops file written by trainpipe may contain: the
  preprocessing types ``features/_preprocess.py`` builds, the estimators above, the internal types their
  fitted state holds (trees, losses, links, kernels, distance metrics, optimisers), numpy arrays, dtypes and
  random states, plain containers, and the exact names an installed model family declares in its
  ``ModelFamily.trusted_types`` (code of an installed package, which is trusted; never read from a file).
  No function, no ``builtins`` module-wide trust, no ``FunctionTransformer``.
"""

from __future__ import annotations

import functools

SKLEARN_CLASSIFIERS: tuple[str, ...] = tuple(f"sklearn.{name}" for name in (
    "calibration.CalibratedClassifierCV", "discriminant_analysis.LinearDiscriminantAnalysis",
    "discriminant_analysis.QuadraticDiscriminantAnalysis", "dummy.DummyClassifier",
    "ensemble.AdaBoostClassifier", "ensemble.BaggingClassifier", "ensemble.ExtraTreesClassifier",
    "ensemble.GradientBoostingClassifier", "ensemble.HistGradientBoostingClassifier",
    "ensemble.RandomForestClassifier", "gaussian_process.GaussianProcessClassifier",
    "linear_model.LogisticRegression", "linear_model.LogisticRegressionCV",
    "linear_model.PassiveAggressiveClassifier", "linear_model.Perceptron", "linear_model.RidgeClassifier",
    "linear_model.RidgeClassifierCV", "linear_model.SGDClassifier", "naive_bayes.BernoulliNB",
    "naive_bayes.CategoricalNB", "naive_bayes.ComplementNB", "naive_bayes.GaussianNB",
    "naive_bayes.MultinomialNB", "neighbors.KNeighborsClassifier", "neighbors.NearestCentroid",
    "neighbors.RadiusNeighborsClassifier", "neural_network.MLPClassifier", "semi_supervised.LabelPropagation",
    "semi_supervised.LabelSpreading", "svm.LinearSVC", "svm.NuSVC", "svm.SVC", "tree.DecisionTreeClassifier",
    "tree.ExtraTreeClassifier",
))

SKLEARN_REGRESSORS: tuple[str, ...] = tuple(f"sklearn.{name}" for name in (
    "cross_decomposition.CCA", "cross_decomposition.PLSCanonical", "cross_decomposition.PLSRegression",
    "dummy.DummyRegressor", "ensemble.AdaBoostRegressor", "ensemble.BaggingRegressor",
    "ensemble.ExtraTreesRegressor", "ensemble.GradientBoostingRegressor", "ensemble.HistGradientBoostingRegressor",
    "ensemble.RandomForestRegressor", "gaussian_process.GaussianProcessRegressor", "isotonic.IsotonicRegression",
    "kernel_ridge.KernelRidge", "linear_model.ARDRegression", "linear_model.BayesianRidge",
    "linear_model.ElasticNet", "linear_model.ElasticNetCV", "linear_model.GammaRegressor",
    "linear_model.HuberRegressor", "linear_model.Lars", "linear_model.LarsCV", "linear_model.Lasso",
    "linear_model.LassoCV", "linear_model.LassoLars", "linear_model.LassoLarsCV", "linear_model.LassoLarsIC",
    "linear_model.LinearRegression", "linear_model.OrthogonalMatchingPursuit",
    "linear_model.OrthogonalMatchingPursuitCV", "linear_model.PassiveAggressiveRegressor",
    "linear_model.PoissonRegressor", "linear_model.QuantileRegressor", "linear_model.RANSACRegressor",
    "linear_model.Ridge", "linear_model.RidgeCV", "linear_model.SGDRegressor", "linear_model.TheilSenRegressor",
    "linear_model.TweedieRegressor", "neighbors.KNeighborsRegressor", "neighbors.RadiusNeighborsRegressor",
    "neural_network.MLPRegressor", "svm.LinearSVR", "svm.NuSVR", "svm.SVR", "tree.DecisionTreeRegressor",
    "tree.ExtraTreeRegressor",
))

_NEEDS_ESTIMATORS = "needs other estimator objects as arguments, which a YAML file cannot give"
_TWO_D = "needs a 2-D target (several outputs); trainpipe trains one target"
NOT_TRAINABLE: dict[str, str] = {
    **{f"sklearn.{n}": _NEEDS_ESTIMATORS for n in (
        "ensemble.StackingClassifier", "ensemble.StackingRegressor", "ensemble.VotingClassifier",
        "ensemble.VotingRegressor", "model_selection.FixedThresholdClassifier",
        "model_selection.TunedThresholdClassifierCV", "multiclass.OneVsOneClassifier",
        "multiclass.OneVsRestClassifier", "multiclass.OutputCodeClassifier", "multioutput.ClassifierChain",
        "multioutput.MultiOutputClassifier", "multioutput.MultiOutputRegressor", "multioutput.RegressorChain",
        "semi_supervised.SelfTrainingClassifier")},
    **{f"sklearn.linear_model.{n}": _TWO_D for n in (
        "MultiTaskElasticNet", "MultiTaskElasticNetCV", "MultiTaskLasso", "MultiTaskLassoCV")},
    "sklearn.compose.TransformedTargetRegressor": "holds functions (func/inverse_func), and a model file holding "
                                                  "functions could run code when loaded; trainpipe never writes one",
}

# Estimators that are not trained directly but appear inside fitted ones (GaussianProcessClassifier on more
# than two classes holds a OneVsRestClassifier / OneVsOneClassifier of binary ones).
_INNER_ESTIMATORS = ("sklearn.multiclass.OneVsRestClassifier", "sklearn.multiclass.OneVsOneClassifier")

# The types features/_preprocess.py builds (ColumnTransformer of Pipelines of imputers, scalers, encoders,
# TF-IDF), as the public paths they are imported from.
_PREPROCESSING = (
    "sklearn.compose.ColumnTransformer", "sklearn.pipeline.Pipeline", "sklearn.impute.SimpleImputer",
    "sklearn.preprocessing.StandardScaler", "sklearn.preprocessing.OneHotEncoder",
    "sklearn.preprocessing.OrdinalEncoder", "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.feature_extraction.text.TfidfTransformer", "sklearn.pipeline.FeatureUnion",
)

# Internal types held by fitted estimators, by their exact (defining) path.
_INTERNAL_TYPES = (
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    # skops leaves TreePredictor out of its defaults: its node array is indexed without bounds checks, so a
    # crafted file can crash (not take over) the process. HistGradientBoosting* cannot be loaded without it.
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.calibration._CalibratedClassifier", "sklearn.calibration._SigmoidCalibration",
    "sklearn.gaussian_process._gpc._BinaryGaussianProcessClassifierLaplace",
    "sklearn.preprocessing._label.LabelBinarizer", "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.neighbors._kd_tree.KDTree", "sklearn.neighbors._ball_tree.BallTree",
)

# Modules whose own classes are all data (loss and link objects, kernels, distance metrics, optimiser state):
# every class *defined* in them is trusted (the names they import from elsewhere are not), except the
# PyFunc* distance metrics, which wrap a Python function.
_DATA_CLASS_MODULES = (
    "sklearn._loss.loss", "sklearn._loss.link", "sklearn._loss._loss", "sklearn.linear_model._sgd_fast",
    "sklearn.gaussian_process.kernels", "sklearn.metrics._dist_metrics",
    "sklearn.neural_network._stochastic_optimizers",
)

# Plain data. Primitive and container types only: no builtins function, no defaultdict (it holds a callable).
_DATA_TYPES = (
    "builtins.bool", "builtins.int", "builtins.float", "builtins.complex", "builtins.str", "builtins.bytes",
    "builtins.bytearray", "builtins.list", "builtins.tuple", "builtins.set", "builtins.dict", "builtins.slice",
    "builtins.NoneType", "collections.OrderedDict",
    "numpy.ndarray", "numpy.dtype", "numpy.ma.core.MaskedArray",
    "numpy.random.mtrand.RandomState", "numpy.random._generator.Generator",
)


def sklearn_estimators() -> tuple[str, ...]:
    """Public paths of every scikit-learn classifier and regressor ``model.type`` may name."""
    return SKLEARN_CLASSIFIERS + SKLEARN_REGRESSORS


def import_public(public: str) -> type | None:
    """The class at a public path *from the tables above* (never a user string); None if this scikit-learn
    has no such class."""
    import importlib

    module_name, _, cls_name = public.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    cls = getattr(module, cls_name, None)
    return cls if isinstance(cls, type) else None


def type_path(cls: type) -> str:
    """The name skops records for a class: its defining module and name."""
    return f"{cls.__module__}.{cls.__qualname__}"


def trusted_types() -> frozenset[str]:
    """Every exact type name a model file written by trainpipe may hold (see the module docstring)."""
    from trainpipe.models._families import families

    declared = {name for family in families() for name in family.trusted_types}
    return _fixed_types() | declared if declared else _fixed_types()


@functools.cache
def _fixed_types() -> frozenset[str]:
    """The fixed part of :func:`trusted_types`: trainpipe's own list."""
    import importlib

    import numpy as np

    names: set[str] = set(_DATA_TYPES) | set(_INTERNAL_TYPES)
    names |= {type_path(t) for t in set(np.sctypeDict.values()) if type_path(t).startswith("numpy.")}
    for public in (*sklearn_estimators(), *_INNER_ESTIMATORS, *_PREPROCESSING):
        cls = import_public(public)
        if cls is not None:
            names.add(type_path(cls))
    for module_name in _DATA_CLASS_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # another scikit-learn version: its types are then simply not trusted
            continue
        names |= {f"{module_name}.{name}" for name, obj in vars(module).items()
                  if isinstance(obj, type) and obj.__module__ == module_name and not name.startswith("PyFunc")}
    return frozenset(names)
