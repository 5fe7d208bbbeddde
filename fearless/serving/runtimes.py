"""Tree ensembles scored by ONNX Runtime instead of their own predict.

A scikit-learn forest or boosting model's predict costs 10 to 50 ms whatever the number of
rows (a Python loop over its trees, with input checks), and holds the GIL most of that time,
so the event loop serving requests stalls with it. The same ensemble converted by skl2onnx
and run by ONNX Runtime scores a batch in well under a millisecond, with the GIL released.

ONNX Runtime's tree operators compute in float32 (inputs, thresholds, leaf sums): a score
differs from the model's own by float32 rounding (about 1e-6 relative), so the fast path's
check at load compares scores and regression values to `FLOAT32_RTOL` on this path; class
labels must still be identical. Models of other types, or with no `fast-trees` extra
installed, score through their own predict (`Unsupported` says why).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fearless.serving.kernels import Final, Unsupported

FLOAT32_RTOL = 1e-5
RUNTIME = "onnxruntime"
EXTRA_HINT = "install the fast-trees extra (pip install 'fearless[fast-trees]')"
TREE_ENSEMBLES = (
    *("RandomForestRegressor", "RandomForestClassifier", "ExtraTreesRegressor"),
    *("ExtraTreesClassifier", "GradientBoostingRegressor", "GradientBoostingClassifier"),
    *("HistGradientBoostingRegressor", "HistGradientBoostingClassifier"),
    *("DecisionTreeRegressor", "DecisionTreeClassifier"),
    *("ExtraTreeRegressor", "ExtraTreeClassifier"),
)


def takes(model: Any) -> bool:
    """Whether `model` is a scikit-learn tree model this runtime is meant for."""
    kind = type(model)
    return kind.__module__.startswith("sklearn.") and kind.__name__ in TREE_ENSEMBLES


def onnx_final(model: Any) -> Final:
    """`model` converted to ONNX and scored by an ONNX Runtime session on one thread;
    Unsupported (naming the reason) when the runtime is missing or the conversion fails."""
    try:
        import onnxruntime
        from skl2onnx import to_onnx
    except ImportError as exc:
        raise Unsupported(f"{RUNTIME} is not installed ({exc.name}); {EXTRA_HINT}") from None
    width = getattr(model, "n_features_in_", None)
    if width is None:
        raise Unsupported(f"{type(model).__name__} does not say how many features it reads")
    classes = getattr(model, "classes_", None)
    options = {id(model): {"zipmap": False}} if classes is not None else None
    try:
        onx = to_onnx(model, np.zeros((1, width), dtype=np.float32), options=options)
        settings = onnxruntime.SessionOptions()
        # One thread: the machine's other core serves HTTP; a batch is small.
        settings.intra_op_num_threads = settings.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            onx.SerializeToString(), settings, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # noqa: BLE001 - any converter or runtime failure: not used
        raise Unsupported(f"{RUNTIME} cannot take {type(model).__name__}: {exc}") from None
    feed = session.get_inputs()[0].name

    def run(x: np.ndarray) -> tuple[list, list | None]:
        outputs = session.run(None, {feed: np.asarray(x, dtype=np.float32)})
        if classes is None:
            return outputs[0].ravel().astype(np.float64).tolist(), None
        labels, proba = outputs
        scores = proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
        return labels.tolist(), scores.astype(np.float64).tolist()

    return run
