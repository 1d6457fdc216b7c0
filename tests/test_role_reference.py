"""The playbooks only map role facts onto role variables, and docs/role-facts.md says how."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hermes.paths import PROJECT_ROOT
from hermes.render.roles import ROLE_FACTS
from hermes.role_reference import playbook_mappings, role_facts_reference

PLAYBOOKS = PROJECT_ROOT / "playbooks"


def test_playbooks_hold_no_jinja_statements() -> None:
    for path in sorted(PLAYBOOKS.glob("*.yml")):
        assert "{%" not in path.read_text(encoding="utf-8"), path.name


def test_every_role_fact_field_reaches_a_role_variable() -> None:
    mapped = {m.source for m in playbook_mappings(PLAYBOOKS)}
    fields = {f"{name}.{field}" for name, model in ROLE_FACTS.items() for field in model.model_fields}
    assert sorted(fields - mapped) == []


def test_a_mapping_with_logic_is_refused(tmp_path: Path) -> None:
    play = "- hosts: all\n  roles:\n    - role: r\n      vars:\n        r_x: {value}\n"
    (tmp_path / "ok.yml").write_text(play.format(value='"{{ hermes_r.x }}"'))
    assert [(m.variable, m.source) for m in playbook_mappings(tmp_path)] == [("r_x", "hermes_r.x")]
    (tmp_path / "ok.yml").write_text(play.format(value="\"{{ hermes_r.x | default('') }}\""))
    with pytest.raises(ValueError, match="r_x is not a plain"):
        playbook_mappings(tmp_path)


def test_role_facts_reference_is_current() -> None:
    doc = (PROJECT_ROOT / "docs" / "role-facts.md").read_text(encoding="utf-8")
    assert doc == role_facts_reference(PLAYBOOKS, PROJECT_ROOT / "roles")
    check = [sys.executable, str(PROJECT_ROOT / "scripts" / "role-facts-reference.py"), "--check"]
    assert subprocess.run(check, capture_output=True, check=False).returncode == 0


def test_role_imports_in_tasks_are_read_and_other_tasks_may_not_set_vars(tmp_path: Path) -> None:
    imported = (
        "- hosts: all\n  pre_tasks:\n    - block:\n        - import_role: {name: r, tasks_from: e}\n"
        '          vars: {r_x: "{{ hermes_r.x }}"}\n'
    )
    (tmp_path / "ok.yml").write_text(imported)
    assert [(m.role, m.variable, m.source) for m in playbook_mappings(tmp_path)] == [("r", "r_x", "hermes_r.x")]
    (tmp_path / "ok.yml").write_text(imported.replace("import_role: {name: r, tasks_from: e}", "ansible.builtin.debug: {}"))
    with pytest.raises(ValueError, match="sets vars but imports no role"):
        playbook_mappings(tmp_path)
