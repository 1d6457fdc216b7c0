"""One error hierarchy, one exit-code map: every command and script reports the same way.

The numbers are spelled out, not taken from hermes.errors: they are the contract README
documents, and a test that compared the code with itself could not fail.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from typer.testing import CliRunner

from hermes.cli import app
from hermes.console import report
from hermes.errors import EstateError, HermesError, LabError, Problem, RunError, StaleRenderError, StoreError
from hermes.lab import image
from hermes.paths import PROJECT_ROOT


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (StaleRenderError("inventory/rendered/lab is stale"), 1),
        (EstateError("x.yml", [Problem("hosts[0].name", "should match pattern")]), 2),
        (LabError("podman is not installed"), 3),
        (RunError("site.yml failed on ppsw-1"), 4),
        (StoreError("store-1b: no answer within 120 s"), 5),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, HermesError) else str(value),
)
def test_each_error_is_reported_with_its_documented_exit_code(
    error: HermesError, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report(error) == code
    printed = capsys.readouterr()
    assert printed.out == ""
    assert str(error) in printed.err


def _base_image_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(**_: object) -> str:
        raise LabError("podman import of the base image failed (tar exit 0, podman exit 125): no space left")

    monkeypatch.setattr(image, "ensure_base_image", fail)


def test_image_module_reports_an_error_as_hermesctl_does(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _base_image_fails(monkeypatch)
    code = image.main([])
    module = capsys.readouterr()
    command = CliRunner().invoke(app, ["lab", "image"])
    assert (code, command.exit_code) == (3, 3)
    assert module.out == command.stdout == ""
    assert module.err == command.stderr
    assert "no space left" in module.err


def test_image_module_prints_the_reference_or_its_usage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The control for the test above: without an error, the reference alone on stdout.
    asked: list[bool] = []

    def ensure(*, rebuild: bool = False, **_: object) -> str:
        asked.append(rebuild)
        return "localhost/hermes-base:bookworm-0123abcd4567"

    monkeypatch.setattr(image, "ensure_base_image", ensure)
    assert image.main(["--rebuild"]) == 0
    assert capsys.readouterr().out == "localhost/hermes-base:bookworm-0123abcd4567\n"
    assert asked == [True]
    assert image.main(["--rebuld"]) == 2
    assert "usage: python -m hermes.lab.image [--rebuild]" in capsys.readouterr().err
    assert asked == [True]


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py").replace("-", "_"), PROJECT_ROOT / "scripts" / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_argument_specs_exits_1_when_a_role_disagrees(tmp_path: Path) -> None:
    check = _script("check-argument-specs.py")
    role = tmp_path / "demo"
    (role / "defaults").mkdir(parents=True)
    (role / "meta").mkdir()
    spec = {"argument_specs": {"main": {"options": {"demo_port": {"type": "int", "default": 25, "description": "TCP port"}}}}}
    (role / "meta" / "argument_specs.yml").write_text(yaml.safe_dump(spec))
    (role / "defaults" / "main.yml").write_text("demo_port: 25\n")
    assert check.main([str(role)]) == 0
    (role / "defaults" / "main.yml").write_text("demo_port: 2525\n")
    assert check.main([str(role)]) == 1
