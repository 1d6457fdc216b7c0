"""docs/estate-file.md is what `hermesctl schema --format markdown` prints, byte for byte.

When this fails, the model changed: run `hermesctl schema --format markdown > docs/estate-file.md`
and review the diff.
"""

from __future__ import annotations

from typer.testing import CliRunner

from hermes.cli import app
from hermes.paths import PROJECT_ROOT
from hermes.reference import estate_reference

DOC = PROJECT_ROOT / "docs" / "estate-file.md"


def test_estate_file_reference_is_current() -> None:
    result = CliRunner().invoke(app, ["schema", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    # The command prints the generator's text unchanged (no wrapping, no markup).
    assert result.stdout == estate_reference()
    assert DOC.read_text(encoding="utf-8") == result.stdout
