import shutil

import yaml
from typer.testing import CliRunner

from fearless.bundles.bundle import build_bundle
from fearless.cli import app
from fearless.commands.models import model_rows
from fearless.registry.local import LocalRegistry


def _populated(tmp_path, credit_project, credit_challenger):
    """A registry with two real credit bundles (production and candidate, the challenger
    once production before) and a second model with no alias."""
    registry = LocalRegistry(tmp_path / "state" / "registry")
    champion = build_bundle(credit_project, registry)
    challenger = build_bundle(credit_challenger, registry)
    for digest in (challenger.digest, champion.digest):
        current = registry.get_alias("credit", "production")
        registry.set_alias("credit", "production", digest, expected=current, actor="ana", reason="")
    registry.set_alias(
        "credit", "previous", challenger.digest, expected=None, actor="ana", reason=""
    )
    registry.set_alias(
        "credit", "candidate", challenger.digest, expected=None, actor="ci", reason=""
    )
    other = shutil.copytree(credit_project, tmp_path / "fraud")
    spec = yaml.safe_load((other / "fearless.yaml").read_text())
    (other / "fearless.yaml").write_text(yaml.safe_dump({**spec, "name": "fraud"}))
    build_bundle(other, registry)
    return registry, champion, challenger


def test_models_lists_aliases_and_digests(tmp_path, monkeypatch, credit_project, credit_challenger):
    registry, champion, challenger = _populated(tmp_path, credit_project, credit_challenger)
    assert [row[:3] for row in model_rows(registry)] == [
        ("credit", "production", champion.digest),
        ("credit", "previous", challenger.digest),
        ("credit", "candidate", challenger.digest),
        ("fraud", "-", "-"),
    ]
    monkeypatch.setenv("FEARLESS_STATE_DIR", str(tmp_path / "state"))
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["MODEL", "ALIAS", "DIGEST", "SINCE"]
    assert lines[1].split()[:3] == ["credit", "production", champion.short_digest]
    assert lines[1].split()[-2:] == ["by", "ana"] and lines[4].split() == ["fraud", "-", "-"]
    full = CliRunner().invoke(app, ["models", "--full"])
    assert champion.digest in full.output


def test_models_on_an_empty_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("FEARLESS_STATE_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0 and "no models in the registry yet" in result.output
