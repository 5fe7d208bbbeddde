"""Train the example credit-default model and write a Fearless model project.

    python examples/credit/train.py [--challenger] [--out DIR]

Writes `model.skops`, `reference.parquet` (held-out features, no target) and `fearless.yaml`
into DIR (default: this folder). Everything is seeded, so the same flag gives the same bytes,
and therefore the same bundle digest.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures, StandardScaler

from fearless.bundles.notebook import save_skops
from fearless.spec import (
    SPEC_FILENAME,
    Approval,
    Bake,
    Column,
    ColumnType,
    DriftThresholds,
    LoadProfile,
    ModelSpec,
    Resources,
    SLOs,
)

SEED = 42
ROWS = 5000
REFERENCE_ROWS = 2000
TARGET = "default"
NUMERIC = {
    "age": ColumnType.int,
    "income": ColumnType.float,
    "loan_amount": ColumnType.float,
    "credit_history_months": ColumnType.int,
    "debt_ratio": ColumnType.float,
}
CATEGORIES = {
    "purpose": ["car", "home", "education", "business", "other"],
    "employment": ["salaried", "self-employed", "unemployed"],
}
PURPOSE_RISK = {"car": 0.0, "home": -0.3, "education": 0.2, "business": 0.5, "other": 0.3}
EMPLOYMENT_RISK = {"salaried": -0.2, "self-employed": 0.3, "unemployed": 1.2}


def make_dataset(rows: int = ROWS, seed: int = SEED) -> pd.DataFrame:
    """Synthetic applicants; `default` follows a plausible risk formula plus noise."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 76, rows)
    income = np.round(rng.lognormal(mean=10.6, sigma=0.45, size=rows), 2)
    loan_amount = np.round(income * rng.uniform(0.05, 0.9, rows), 2)
    credit_history_months = np.minimum(rng.integers(0, 361, rows), (age - 18) * 12).astype(np.int64)
    debt_ratio = np.round(np.clip(rng.beta(2.0, 5.0, rows) * 1.4, 0.0, 1.4), 4)
    purpose = rng.choice(CATEGORIES["purpose"], rows, p=[0.3, 0.25, 0.15, 0.15, 0.15])
    employment = rng.choice(CATEGORIES["employment"], rows, p=[0.7, 0.2, 0.1])

    logit = (
        -0.7
        + 3.0 * (debt_ratio - 0.4)
        + 1.5 * (loan_amount / income - 0.45)
        - 0.004 * credit_history_months
        - 0.015 * (age - 40)
        + pd.Series(purpose).map(PURPOSE_RISK).to_numpy()
        + pd.Series(employment).map(EMPLOYMENT_RISK).to_numpy()
        + rng.normal(0.0, 0.5, rows)
    )
    default = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame(
        {
            "age": age.astype(np.int64),
            "income": income,
            "loan_amount": loan_amount,
            "credit_history_months": credit_history_months,
            "debt_ratio": debt_ratio,
            "purpose": purpose.astype(object),
            "employment": employment.astype(object),
            TARGET: default,
        }
    )


def build_pipeline(challenger: bool) -> Pipeline:
    """Champion: scaled numbers + one-hot categories into a logistic regression.

    The challenger adds pairwise interactions of the numbers and regularises harder: a
    different model that still agrees with the champion on nearly every record.
    """
    numeric = (
        make_pipeline(StandardScaler(), PolynomialFeatures(2, interaction_only=True))
        if challenger
        else StandardScaler()
    )
    features = ColumnTransformer(
        [
            ("numeric", numeric, list(NUMERIC)),
            ("categories", OneHotEncoder(handle_unknown="ignore"), list(CATEGORIES)),
        ]
    )
    classifier = LogisticRegression(C=0.3 if challenger else 1.0, max_iter=1000)
    return Pipeline([("features", features), ("classifier", classifier)])


def build_spec() -> ModelSpec:
    """The project's fearless.yaml: schema and every release gate, as data.

    The same for both versions: a new model version is a new model file, not a new spec.
    """
    schema = [Column(name=name, type=kind) for name, kind in NUMERIC.items()] + [
        Column(name=name, type=ColumnType.category, values=values)
        for name, values in CATEGORIES.items()
    ]
    return ModelSpec(
        name="credit",
        description="Probability that a loan applicant defaults.",
        model=Path("model.skops"),
        reference_data=Path("reference.parquet"),
        input_schema=schema,
        slos=SLOs(p95_ms=250, p99_ms=500, max_error_rate=0.01),
        drift=DriftThresholds(),
        load=LoadProfile(profile="steady", rate=100, duration_s=15),
        approval=Approval(timeout_s=3600),
        bake=Bake(window_s=10),
        resources=Resources(cpu=0.5, memory_mb=1024),
    )


def train(out: Path, challenger: bool = False) -> Path:
    """Train, then write the model, the held-out reference features and the spec into `out`."""
    data = make_dataset()
    features = list(NUMERIC) + list(CATEGORIES)
    reference = data.sample(n=REFERENCE_ROWS, random_state=SEED)
    training = data.drop(index=reference.index)
    model = build_pipeline(challenger).fit(training[features], training[TARGET])

    out.mkdir(parents=True, exist_ok=True)
    save_skops(model, out / "model.skops")
    reference[features].reset_index(drop=True).to_parquet(out / "reference.parquet", index=False)
    spec = build_spec().to_yaml_dict()
    (out / SPEC_FILENAME).write_text(yaml.safe_dump(spec, sort_keys=False))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--challenger", action="store_true", help="train the challenger model")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    out = train(args.out, args.challenger)
    print(f"wrote {out / 'model.skops'}, reference.parquet and {SPEC_FILENAME}")


if __name__ == "__main__":
    main()
