"""Small model projects ending in a tree model, as `fearless init` writes them."""

from __future__ import annotations

from pathlib import Path


def tree_project(into: Path, family: str, trees: int = 20) -> Path:
    """The diabetes pipeline (numbers scaled, `sex` one-hot) ending in the scikit-learn
    estimator named `family` (or XGBoost's and LightGBM's, XGB… and LGBM…); a classifier
    predicts a band of the target ("low", "mid", "high"; two bands for a binary one;
    XGBoost takes only their numbers)."""
    import importlib

    import numpy as np
    from sklearn import ensemble
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_diabetes
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from fearless.bundles.notebook import write_project

    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame["sex"] = frame["sex"].map({1.0: "f", 2.0: "m"})
    target = frame.pop("target")
    if family.endswith("Classifier"):
        edges = [140] if "Binary" in family else [100, 200]
        bands = np.digitize(target, edges)
        target = bands if family.startswith("XGB") else np.array(["low", "mid", "high"])[bands]
        family = family.replace("Binary", "")
    library = {"XGB": "xgboost", "LGB": "lightgbm"}.get(family[:3])
    module = importlib.import_module(library) if library else ensemble
    estimator = getattr(module, family)(random_state=0)
    if library == "lightgbm":
        estimator.set_params(verbose=-1)
    if "max_iter" in estimator.get_params():
        estimator.set_params(max_iter=trees)
    else:
        estimator.set_params(n_estimators=trees)
    numeric = [c for c in frame.columns if c != "sex"]
    features = ColumnTransformer(
        [
            ("num", StandardScaler(), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["sex"]),
        ]
    )
    model = Pipeline([("features", features), ("model", estimator)]).fit(frame, target)
    write_project(model, frame, into, name="diabetes")
    return into
