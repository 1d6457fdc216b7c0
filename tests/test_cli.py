"""hermesctl through Typer's runner: exit codes, messages, and no tracebacks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import ansible_runner
import pytest
from typer.testing import CliRunner

from hermes import cli
from hermes.cli import app
from hermes.paths import PROJECT_ROOT
from tests.conftest import WriteEstate

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_validate_default_estate() -> None:
    code, output = _run("validate")
    assert code == 0
    assert "valid estate 'lab'" in output


def test_validate_bad_estate_lists_every_problem(write_estate: WriteEstate) -> None:
    # Field errors are all reported together; cross-object rules run once every field is valid.
    estate = write_estate({"hosts[0].name": "PPSW_1", "services.mx.extra": 1})
    code, output = _run("validate", "--estate", str(estate))
    assert code == 2
    assert "2 problems" in output
    assert "  hosts[0].name: String should match pattern" in output
    assert "  services.mx.extra: unknown field" in output
    estate = write_estate({"hosts[0].site": "elsewhere", "hosts[1].network": "dmz"})
    code, output = _run("validate", "--estate", str(estate))
    assert code == 2
    assert "is not a valid estate (2 problems):" in output
    assert "  hosts[0].site: site 'elsewhere' is not defined in sites" in output


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "cannot read"),
        ("name: [unclosed\n", "invalid YAML"),
        ("- a list\n", "must be a YAML mapping"),
        (b"\xff\xfe", "cannot read"),
    ],
)
def test_unreadable_or_malformed_files(tmp_path: Path, content: str | bytes | None, words: str) -> None:
    estate = tmp_path / "estate.yml"
    if isinstance(content, bytes):
        estate.write_bytes(content)
    elif content is not None:
        estate.write_text(content)
    code, output = _run("validate", "-e", str(estate))
    assert code == 2
    assert words in output


def test_render_check_passes_then_fails_after_an_edit(tmp_path: Path) -> None:
    estates = tmp_path / "estates"
    shutil.copytree(PROJECT_ROOT / "inventory" / "estates", estates, ignore=shutil.ignore_patterns("hermes-2007*"))
    out = tmp_path / "rendered"
    estate = estates / "lab.yml"
    assert _run("render", "-e", str(estate), "-o", str(out))[0] == 0
    code, output = _run("render", "--check", "-e", str(estate), "-o", str(out))
    assert code == 0
    assert f"{out} is up to date" in output
    estate.write_text(estate.read_text().replace("queue_interval: 1m", "queue_interval: 2m"))
    code, output = _run("render", "--check", "-e", str(estate), "-o", str(out))
    assert code == 1
    assert "-  queue_interval: 1m" in output and "+  queue_interval: 2m" in output
    assert "is stale" in output
    code, output = _run("diff", "-e", str(estate), "-o", str(out))
    assert code == 0 and "+  queue_interval: 2m" in output


def test_deploy_refuses_a_stale_render_unless_told_to_render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No lab SSH access (its state is here, empty): with --render the deploy stops after the
    # render, before anything reaches Ansible.
    monkeypatch.setattr(cli, "LAB_STATE", tmp_path / "lab state")

    def no_run(**kwargs: object) -> None:
        raise AssertionError("ansible-runner was called")

    monkeypatch.setattr(ansible_runner, "run", no_run)
    estates = tmp_path / "estates"
    shutil.copytree(PROJECT_ROOT / "inventory" / "estates", estates, ignore=shutil.ignore_patterns("hermes-2007*"))
    out = tmp_path / "rendered"
    estate = estates / "lab.yml"
    assert _run("render", "-e", str(estate), "-o", str(out))[0] == 0
    estate.write_text(estate.read_text().replace("queue_interval: 1m", "queue_interval: 2m"))
    # Refused, naming the way to override; nothing written.
    result = runner.invoke(app, ["deploy", "--lab", "-e", str(estate), "-o", str(out)], env={"COLUMNS": "1000"})
    assert result.exit_code == 1, result.output
    assert f"{out} is stale" in result.stderr and "--render" in result.stderr
    assert _run("render", "--check", "-e", str(estate), "-o", str(out))[0] == 1
    # With --render: the diff on stderr, the tree current, and then the lab's missing SSH access stops it.
    result = runner.invoke(app, ["deploy", "--lab", "--render", "-e", str(estate), "-o", str(out)], env={"COLUMNS": "1000"})
    assert result.exit_code == 2, result.output
    assert "-  queue_interval: 1m\n+  queue_interval: 2m\n" in result.stderr
    assert f"--render: {out}: 1 of " in result.stderr
    assert "run hermesctl lab up first" in result.stderr and result.stdout == ""
    code, output = _run("render", "--check", "-e", str(estate), "-o", str(out))
    assert code == 0 and f"{out} is up to date" in output


def test_render_writes_nothing_for_a_bad_estate(write_estate: WriteEstate, tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    code, _ = _run("render", "-e", str(write_estate({"hosts[0].rack": "nowhere"})), "-o", str(out))
    assert code == 2
    assert not out.exists()


@pytest.mark.parametrize("view", ["hosts", "pairs", "placement", "capacity"])
def test_show(view: str) -> None:
    code, output = _run("show", view)
    assert code == 0
    assert {"hosts": "store-1a", "pairs": "cyrus-1", "placement": "mailz", "capacity": "cyrus-2"}[view] in output


def test_schema_is_json_schema_of_the_estate() -> None:
    code, output = _run("schema")
    assert code == 0
    schema = json.loads(output)
    assert schema["title"] == "Estate"
    assert schema["additionalProperties"] is False
    assert "store_pairs" in json.dumps(schema)


def test_unknown_command_is_a_usage_error() -> None:
    result = runner.invoke(app, ["deploy-everything"])
    assert result.exit_code == 2
