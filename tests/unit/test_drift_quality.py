import numpy as np
import pandas as pd
import pytest

from fearless.drift.quality import measure_quality, out_of_range_share


def test_out_of_range_counts_values_outside_the_reference_min_and_max():
    reference = pd.Series([1.0, 5.0, 3.0])
    current = pd.Series([1.0, 5.0, 0.5, 6.0, np.nan])  # the bounds themselves are in range

    assert out_of_range_share(reference, current) == pytest.approx(0.5)
    assert out_of_range_share(pd.Series([np.nan]), current) is None
    assert out_of_range_share(reference, pd.Series([np.nan])) is None


def test_quality_of_each_column():
    reference = pd.DataFrame({"x": [0.0, 10.0], "p": ["car", "home"]})
    current = pd.DataFrame({"x": [5.0, 20.0, np.nan, 11.0], "p": ["car", "boat", "bike", None]})

    quality = measure_quality(reference, current, numeric=["x"], declared={"p": ["bike"]})

    assert quality.missing_share == {"x": 0.25, "p": 0.25}
    assert quality.out_of_range_share == {"x": pytest.approx(2 / 3)}
    assert quality.new_categories == {"p": ["boat"]}  # bike is declared in the spec
    assert quality.of("p") == {
        "missing_share": 0.25,
        "out_of_range_share": None,
        "new_categories": ["boat"],
    }
