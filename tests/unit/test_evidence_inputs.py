"""Reading what the charts draw: Locust's per-second history and the drift check's scores."""

from pathlib import Path

import pytest

from fearless.evidence.history import drift_bars, history_path, read_drift_scores, read_history

FIXTURES = Path(__file__).parent.parent / "fixtures" / "evidence"


def test_the_history_is_beside_the_csv_prefix():
    assert history_path("/runs/r1/loadtest/locust") == Path(
        "/runs/r1/loadtest/locust_stats_history.csv"
    )


def test_a_real_history_reads_second_by_second():
    history = read_history(FIXTURES / "candidate" / "locust_stats_history.csv")
    assert history.seconds == [0, 1, 2, 3]
    assert history.users == [0, 4, 4, 4]
    # No response yet in the first row: Locust writes N/A, the chart leaves a gap.
    assert history.p50_ms == [None, 82, 82, 83]
    assert history.p95_ms == [None, 85, 84, 85]
    assert history.p99_ms == [None, 98, 98, 85]


def test_throughput_is_the_growth_of_the_request_count_not_locusts_sliding_average():
    history = read_history(FIXTURES / "champion" / "locust_stats_history.csv")
    # Locust's own Requests/s column reads 0, 0, 0, 293 for this run.
    assert history.rps == [0.0, 621.0, 621.0, 636.0]
    assert history.failures_per_s == [0.0, 0.0, 0.0, 0.0]


def _write(tmp_path, *rows):
    header = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,95%,99%,"
    header += "Total Request Count,Total Failure Count"
    path = tmp_path / "h.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_only_aggregated_rows_count_and_gaps_in_time_divide_the_counts(tmp_path):
    path = _write(
        tmp_path,
        "100,2,,Aggregated,0,0,N/A,N/A,N/A,0,0",
        "101,2,POST,/predict,5,0,10,20,30,10,0",
        "101,2,,Aggregated,5,0,10,20,30,10,0",
        "101,2,,Aggregated,5,0,10,20,30,12,0",  # the same second again: the first one stands
        "103,2,,Aggregated,5,0,11,21,31,30,4",
    )
    history = read_history(path)
    assert history.seconds == [0, 1, 3]
    assert history.rps == [0, 10, 10] and history.failures_per_s == [0, 0, 2]


def test_a_missing_history_is_none_and_a_foreign_csv_names_its_columns(tmp_path):
    assert read_history(tmp_path / "absent.csv") is None
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"other.csv is not a Locust stats history.*Timestamp"):
        read_history(tmp_path / "other.csv")
    with pytest.raises(ValueError, match="bad row at '100'"):
        read_history(_write(tmp_path, "100,x,,Aggregated,0,0,1,2,3,0,0"))


def test_drift_bars_are_every_column_then_the_prediction_drift():
    scores = read_drift_scores(FIXTURES / "drift_scores.json")
    bars = drift_bars(scores)
    assert [b.column for b in bars][:2] == ["age", "income"]
    assert bars[-1].column == "prediction_score" and len(bars) == len(scores.columns) + 1
    assert all(b.threshold == 0.1 for b in bars)
    first_release = scores.model_copy(update={"prediction_drift": None})
    assert len(drift_bars(first_release)) == len(scores.columns)


def test_unreadable_drift_scores_name_the_file(tmp_path):
    (tmp_path / "scores.json").write_text("{}")
    with pytest.raises(ValueError, match="scores.json is not a drift check's scores"):
        read_drift_scores(tmp_path / "scores.json")
    with pytest.raises(ValueError, match="absent.json"):
        read_drift_scores(tmp_path / "absent.json")
