"""Where an estate lives: its home, rendered inventory and run records, inside or outside the checkout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hermes.cli import app
from hermes.loader import load_estate
from hermes.paths import PROJECT_ROOT, SHIPPED_HOME, estate_home, estate_label, rendered_dir, runs_dir
from hermes.render import render_inventory

SHIPPED = PROJECT_ROOT / "inventory" / "estates"
# An estate's own repository: estate files under estates/, or beside everything else.
LAYOUTS = {"estates-dir": "estates/lab.yml", "flat": "lab.yml"}

runner = CliRunner()


def copy_lab_estate(directory: Path, layout: str) -> Path:
    """The shipped lab estate (estate file and the accounts file it names) copied under ``directory``."""
    estate = directory / LAYOUTS[layout]
    estate.parent.mkdir(parents=True)
    shutil.copy(SHIPPED / "lab.yml", estate)
    shutil.copy(SHIPPED / "lab.accounts", estate.parent)
    return estate


def test_the_shipped_estates_keep_their_places() -> None:
    for name in ("lab", "hermes-2007"):
        home = estate_home(SHIPPED / f"{name}.yml")
        assert home == SHIPPED_HOME == PROJECT_ROOT / "inventory"
        assert rendered_dir(name, home) == rendered_dir(name) == PROJECT_ROOT / "inventory" / "rendered" / name
        assert runs_dir(name, home) == PROJECT_ROOT / "inventory" / ".hermes" / name / "runs"
        assert estate_label(SHIPPED / f"{name}.yml") == f"inventory/estates/{name}.yml"


def test_home_is_above_an_estates_directory_else_the_estate_files_own() -> None:
    assert estate_home(Path("/srv/mail/estates/cam.yml")) == Path("/srv/mail")
    assert estate_home(Path("/srv/mail/cam.yml")) == Path("/srv/mail")
    assert estate_home(Path("/srv/mail/estate-files/cam.yml")) == Path("/srv/mail/estate-files")
    assert rendered_dir("cam", Path("/srv/mail")) == Path("/srv/mail/rendered/cam")
    assert runs_dir("cam", Path("/srv/mail")) == Path("/srv/mail/.hermes/cam/runs")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_outside_estate_renders_into_its_home(tmp_path: Path, layout: str) -> None:
    """Rendered in two different places, the outside estate gives the same bytes: only the
    label in each header (relative to the estate's home) differs from the shipped estate's."""
    renders = []
    for place in ("my estate", "elsewhere/again"):
        home = tmp_path / place
        estate = copy_lab_estate(home, layout)
        assert estate_label(estate) == LAYOUTS[layout]
        result = runner.invoke(app, ["render", "--estate", str(estate)])
        assert result.exit_code == 0, result.output
        rendered = home / "rendered" / "lab"
        assert f"{rendered}: " in result.output
        assert {p.name for p in home.iterdir()} - {"estates", "lab.yml", "lab.accounts"} == {"rendered"}
        renders.append({p.relative_to(rendered): p.read_text() for p in sorted(rendered.rglob("*.yml"))})
    shipped = render_inventory(load_estate(SHIPPED / "lab.yml"), "inventory/estates/lab.yml")
    assert renders[0] == renders[1]
    assert renders[0] == {
        Path(path): text.replace("inventory/estates/lab.yml", LAYOUTS[layout]) for path, text in shipped.items()
    }
    assert all(f"hermesctl render --estate {LAYOUTS[layout]}\n" in text for text in renders[0].values())


def test_output_still_overrides_the_home(tmp_path: Path) -> None:
    estate = copy_lab_estate(tmp_path / "repo", "estates-dir")
    result = runner.invoke(app, ["render", "--estate", str(estate), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "hosts.yml").is_file()
    assert not (tmp_path / "repo" / "rendered").exists()
