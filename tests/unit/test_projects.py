from fearless.bundles.projects import changed_projects


def test_changed_files_map_to_their_model_projects(tmp_path):
    for project in ("models/credit", "models/churn", "examples/fraud"):
        (tmp_path / project).mkdir(parents=True)
        (tmp_path / project / "fearless.yaml").write_text("name: x\n")
    (tmp_path / "models/credit/data").mkdir()
    changed = [
        "models/credit/data/reference.parquet",
        "models/credit/fearless.yaml",
        "examples/fraud/train.py",
        "README.md",
        "fearless/cli.py",
        "models/gone/deleted.py",
    ]
    assert changed_projects(changed, tmp_path) == ["examples/fraud", "models/credit"]
    assert changed_projects(["README.md"], tmp_path) == []
