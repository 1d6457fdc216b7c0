"""A placement edit that would relocate users whose mail is elsewhere is refused (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hermes.cli import app
from hermes.loader import load_estate
from hermes.relocations import RelocationError, refuse_unmoved
from tests.conftest import LAB_ACCOUNTS, WriteEstate

runner = CliRunner()


def _hermesctl(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_placement_edit_is_refused_unless_the_users_mail_was_moved(tmp_path: Path, write_estate: WriteEstate) -> None:
    rendered = tmp_path / "rendered"
    estate = write_estate()
    held = load_estate(estate).placement
    # A first render relocates nobody.
    assert _hermesctl("render", "--estate", str(estate), "-o", str(rendered))[0] == 0
    before = _tree(rendered)

    # The lab's second half of the alphabet goes to cyrus-1: its users' mail is on cyrus-2.
    edited = write_estate({"placement.letters": {"a-z": "cyrus-1"}, "placement.overrides": {}}, name="edited.yml")
    placed = load_estate(edited).placement
    relocated = sorted(u for u in held if held[u] != placed[u])
    assert relocated, "the edit must relocate someone for this test to mean anything"
    for command in (["render"], ["diff"]):
        code, output = _hermesctl(*command, "--estate", str(edited), "-o", str(rendered))
        assert code == 2, output
        assert f"{len(relocated)} user(s) would be placed on another pair" in output
        for user in relocated:
            assert f"{user}: mail on {held[user]}, placed on {placed[user]}" in output
        assert not any(f"  {user}: mail on" in output for user in set(held) - set(relocated))
        assert f"placement.overrides (e.g. {relocated[0]}: {held[relocated[0]]})" in output
    assert _tree(rendered) == before, "a refused render wrote nothing"

    # Overrides that keep them where their mail is, and a new user (who has no mail yet) on
    # the new pair: nobody is relocated.
    kept = write_estate(
        {"placement.letters": {"a-z": "cyrus-1"}, "placement.overrides": {u: held[u] for u in relocated}},
        accounts=LAB_ACCOUNTS + "zz9\n",
        name="kept.yml",
    )
    assert _hermesctl("render", "--estate", str(kept), "-o", str(rendered))[0] == 0
    assert load_estate(kept).placement["zz9"] == "cyrus-1"

    # Once their mail has moved the operator says so, for each user; a name the render does
    # not relocate is refused, so a typo cannot pass for a move.
    moved = ["--accept-move", relocated[0]]
    code, output = _hermesctl("render", "--estate", str(edited), "-o", str(rendered), *moved, "--accept-move", "nobody1")
    assert code == 2
    assert "--accept-move: nobody1: this render does not relocate nobody1" in output
    if len(relocated) > 1:
        code, output = _hermesctl("render", "--estate", str(edited), "-o", str(rendered), *moved)
        assert code == 2
        assert f"{relocated[0]}: mail on" not in output and f"{relocated[1]}: mail on" in output
    everyone = [arg for user in relocated for arg in ("--accept-move", user)]
    code, output = _hermesctl("render", "--estate", str(edited), "-o", str(rendered), *everyone)
    assert code == 0, output
    # The render now holds where their mail is: the next render needs no acceptance.
    assert _hermesctl("render", "--estate", str(edited), "-o", str(rendered))[0] == 0


def test_a_refusal_of_a_block_names_a_few_and_counts_the_rest() -> None:
    held = {f"u{n:04}": "cyrus-1" for n in range(500)}
    with pytest.raises(RelocationError) as refused:
        refuse_unmoved(held, dict.fromkeys(held, "cyrus-2"), moved=["u0000"])
    message = str(refused.value)
    assert "499 user(s) would be placed" in message
    assert "u0001: mail on cyrus-1, placed on cyrus-2" in message
    assert "u0000: mail on" not in message
    assert "... and 479 more" in message
    refuse_unmoved(held, held, moved=())


def test_an_unreadable_committed_placement_is_a_clear_refusal(tmp_path: Path, write_estate: WriteEstate) -> None:
    estate = write_estate()
    rendered = tmp_path / "rendered"
    assert _hermesctl("render", "--estate", str(estate), "-o", str(rendered))[0] == 0
    (rendered / "group_vars/all/placement.yml").write_text("hermes_placement: [broken\n")
    code, output = _hermesctl("render", "--estate", str(estate), "-o", str(rendered))
    assert code == 2
    assert "holds no hermes_placement map" in output
    assert "Traceback" not in output
