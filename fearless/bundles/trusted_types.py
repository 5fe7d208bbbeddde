"""The types and functions a `.skops` model file may name: what real scikit-learn models hold.

skops rebuilds on its own only what it trusts by default (scikit-learn's estimators, NumPy and
SciPy ufuncs, builtin containers) and reports every other name a file holds. A reported name
is code the loader will call, so each one is listed here in full, never matched by prefix:
`numpy.testing._private.utils.runstring` starts like NumPy and calls `exec`. A model project
that needs more lists the names in its spec (`trusted_types`).

The list was found by saving fitted models of many families (linear, trees and forests,
gradient boosting, hist gradient boosting with categorical features, neighbours, SVMs, MLPs,
calibration, column transformers and selectors, splines) and asking skops what it reports.
XGBoost's and LightGBM's scikit-learn estimators (the `boosters` extra) are trusted where
their library is installed: each keeps its trees as its library's own model text or bytes,
which their Booster's `__setstate__` parses; nothing the file names is called beyond that.
"""

from __future__ import annotations

from functools import cache


def name_of(obj) -> str:
    """The dotted name skops reports for a type or function."""
    return f"{obj.__module__}.{obj.__qualname__}"


@cache
def default_trusted_types() -> frozenset[str]:
    """Every estimator scikit-learn lists, and the helpers fitted models hold."""
    import functools

    import numpy as np
    from scipy import sparse
    from scipy.interpolate import BSpline
    from sklearn import feature_selection
    from sklearn.calibration import _CalibratedClassifier, _SigmoidCalibration
    from sklearn.compose import make_column_selector
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.metrics import _dist_metrics
    from sklearn.neighbors import BallTree, KDTree
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer
    from sklearn.tree._tree import Tree
    from sklearn.utils import Bunch, all_estimators
    from sklearn.utils.validation import check_array

    estimators = [cls for _, cls in all_estimators()]
    helpers = [
        object,  # make_column_selector(dtype_include=object) keeps the type itself
        functools.partial,  # the function inside it is checked on its own
        np.dtype,
        np.ndarray,
        *(sparse.csr_matrix, sparse.csc_matrix, sparse.coo_matrix),
        *(sparse.csr_array, sparse.csc_array, sparse.coo_array),
        BSpline,  # SplineTransformer
        *(_CalibratedClassifier, _SigmoidCalibration),
        make_column_selector,
        TreePredictor,
        *(BallTree, KDTree),
        *(AdamOptimizer, SGDOptimizer),
        Tree,
        Bunch,
    ]
    # Distance metrics of neighbour models; a metric wrapping a Python function is left out.
    metrics = {
        cls
        for mapping in (_dist_metrics.METRIC_MAPPING64, _dist_metrics.METRIC_MAPPING32)
        for cls in mapping.values()
        if not cls.__name__.startswith("PyFunc")
    }
    functions = [
        check_array,  # HistGradientBoosting's categorical features
        BSpline(np.arange(4.0), np.ones(2), 1)._asarray,  # what BSpline keeps, by SciPy version
        *(feature_selection.f_classif, feature_selection.f_regression, feature_selection.chi2),
        feature_selection.r_regression,
        *(feature_selection.mutual_info_classif, feature_selection.mutual_info_regression),
    ]
    return frozenset(
        [name_of(obj) for obj in [*estimators, *helpers, *metrics, *functions]] + booster_types()
    )


# The names skops reports for them, by library: fixed here so that loading a model does not
# import either library just to spell them (their import costs seconds at every start-up).
BOOSTER_TYPES = {
    "xgboost": (
        *(f"xgboost.sklearn.{n}" for n in ("XGBRegressor", "XGBClassifier", "XGBRanker")),
        *("xgboost.sklearn.XGBRFRegressor", "xgboost.sklearn.XGBRFClassifier"),
        "xgboost.core.Booster",
    ),
    "lightgbm": (
        *(f"lightgbm.sklearn.{n}" for n in ("LGBMRegressor", "LGBMClassifier", "LGBMRanker")),
        "lightgbm.basic.Booster",
        "collections.OrderedDict",  # its fitted parameters
    ),
}


def booster_types() -> list[str]:
    """XGBoost's and LightGBM's estimators and boosters, of the libraries installed."""
    import importlib.util

    return [
        name
        for library, names in BOOSTER_TYPES.items()
        if importlib.util.find_spec(library) is not None
        for name in names
    ]
