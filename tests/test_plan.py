"""hermesctl plan: the changes a check-mode run's events report, made unified diffs; secrets
masked in all it prints; and the command wired to the deploy's own call, changing nothing."""

from __future__ import annotations

import copy
import io
import itertools
import json
import secrets
import shlex
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ansible_runner
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from hermes import cli
from hermes.plan import MASK, PRIVATE_KEY_HIDDEN, Mask, Plan, TaskChange, task_change, unified_diff, vault_secrets
from hermes.runner import run_playbook
from tests.test_deploy import SUBJECT, hermesctl, local_call, probe_play, rendered_estate, site_files

runner = CliRunner()

# ansible-runner's events from a run with --check --diff, as its event_handler gets them
# (trimmed from a real run: the fields hermes reads, among some it does not).

_COUNTER = itertools.count(1)


def _event(kind: str, task: str, /, host: str = "ppsw-1", role: str | None = None, **data: Any) -> dict[str, Any]:
    counter = next(_COUNTER)
    return {
        "uuid": f"00000000-0000-0000-0000-{counter:012}",
        "counter": counter,
        "stdout": "",
        "event": kind,
        "pid": 4242,
        "created": "2025-05-01T10:00:00.000000+00:00",
        "event_data": {
            "playbook": "/srv/hermes/playbooks/site.yml",
            "play": "Mail hubs",
            "play_pattern": "mx",
            "task": task,
            "task_action": "ansible.builtin.template",
            "task_args": "",
            "task_path": "/srv/hermes/roles/mta/tasks/configure.yml:12",
            **({"role": role} if role else {}),
            "host": host,
            "remote_addr": host,
            **data,
        },
    }


EXIM_BEFORE = "# exim4.conf\nqueue_run_max = 5\nsmtp_accept_max = 100\n"
EXIM_AFTER = "# exim4.conf\nqueue_run_max = 10\nsmtp_accept_max = 100\n"
TEMPLATE_DIFF = [
    {
        "before": EXIM_BEFORE,
        "after": EXIM_AFTER,
        "before_header": "/etc/exim4/exim4.conf",
        "after_header": "/srv/hermes/roles/mta/templates/etc/exim4/exim4.conf.j2",
    }
]


def lineinfile_item(line: str, changed: bool) -> dict[str, Any]:
    """A loop item's result, as lineinfile reports it (in the item's event and in the task's results)."""
    after = "x = 1\n" + ("" if line == "x = 1" else f"{line}\n")
    return {
        "changed": changed,
        "msg": "line added" if changed else "",
        "backup": "",
        "diff": [
            {
                "before": "x = 1\n",
                "after": after,
                "before_header": "/etc/hermes.conf (content)",
                "after_header": "/etc/hermes.conf (content)",
            },
            {"before_header": "/etc/hermes.conf (file attributes)", "after_header": "/etc/hermes.conf (file attributes)"},
        ],
        "invocation": {"module_args": {"line": line, "path": "/etc/hermes.conf", "state": "present"}},
        "failed": False,
        "_ansible_no_log": False,
        "item": line,
        "ansible_loop_var": "item",
        "_ansible_item_label": line,
    }


RECAP = {
    "uuid": "00000000-0000-0000-0000-999999999999",
    "counter": 999,
    "event": "playbook_on_stats",
    "event_data": {
        "playbook": "/srv/hermes/playbooks/site.yml",
        **{key: {} for key in ("dark", "failures", "ignored", "rescued", "skipped")},
        "changed": {"ppsw-1": 5},
        "ok": {"ppsw-1": 7, "ppsw-2": 1},
        "processed": {"ppsw-1": 1, "ppsw-2": 1},
    },
}
CENSORED = {"censored": "the output has been hidden due to the fact that 'no_log: true' was specified for this result"}

EVENTS = [
    _event("playbook_on_task_start", "Exim's configuration", role="mta", name="Exim's configuration"),
    _event("runner_on_start", "Exim's configuration", role="mta"),
    # Ansible's own copy of a diff, for its display: the task's result has it too.
    _event("runner_on_file_diff", "Exim's configuration", role="mta", diff=TEMPLATE_DIFF),
    _event(
        "runner_on_ok",
        "Exim's configuration",
        role="mta",
        res={"diff": TEMPLATE_DIFF, "changed": True, "_ansible_no_log": False},
        event_loop=None,
    ),
    # Unchanged: a diff of nothing (the file module's state), not shown.
    _event(
        "runner_on_ok",
        "Exim's configuration",
        host="ppsw-2",
        role="mta",
        res={"diff": {"before": {"path": "/etc/exim4/exim4.conf"}, "after": {"path": "/etc/exim4/exim4.conf"}}, "changed": False},
    ),
    # A loop: each item's event, then the task's result holding every item's; one item changes.
    _event("runner_item_on_ok", "Lines", res=lineinfile_item("x = 1", changed=False)),
    _event("runner_item_on_ok", "Lines", res=lineinfile_item("y = 2", changed=True)),
    _event(
        "runner_on_ok",
        "Lines",
        res={
            "results": [lineinfile_item("x = 1", changed=False), lineinfile_item("y = 2", changed=True)],
            "changed": True,
            "msg": "All items completed",
        },
        event_loop="items",
    ),
    # A structure's change (the file module's), shown as JSON.
    _event(
        "runner_on_ok",
        "Spool directory",
        res={
            "path": "/var/spool/exim4",
            "changed": True,
            "diff": {
                "before": {"path": "/var/spool/exim4", "state": "absent"},
                "after": {"path": "/var/spool/exim4", "state": "directory"},
            },
        },
    ),
    # apt reports what it would do as prepared text.
    _event(
        "runner_on_ok",
        "Packages",
        role="common",
        res={"changed": True, "diff": {"prepared": "The following NEW packages will be installed:\n  exim4-daemon-heavy"}},
    ),
    # no_log: Ansible censors the result, changed and all.
    _event("runner_on_ok", "The directory's passwords", role="directory", res=CENSORED),
    # diff: false: changed, and no diff.
    _event("runner_on_ok", "Cyrus admin password", role="cyrus_store", res={"diff": [], "changed": True}),
    # Skipped (a command, in check mode), failed: nothing would change.
    _event("runner_on_skipped", "Reload", event_loop=None),
    _event(
        "runner_on_failed",
        "Probe",
        res={"changed": True, "diff": TEMPLATE_DIFF, "msg": "non-zero return code"},
        ignore_errors=True,
    ),
    RECAP,
]


def test_each_changed_task_and_its_diff_from_the_events() -> None:
    changes = [change for event in EVENTS if (change := task_change(event)) is not None]
    assert changes == [
        TaskChange(
            "ppsw-1",
            "mta : Exim's configuration",
            "--- before: /etc/exim4/exim4.conf\n"
            "+++ after: /srv/hermes/roles/mta/templates/etc/exim4/exim4.conf.j2\n"
            "@@ -1,3 +1,3 @@\n"
            " # exim4.conf\n"
            "-queue_run_max = 5\n"
            "+queue_run_max = 10\n"
            " smtp_accept_max = 100\n",
        ),
        # The loop once, with its changed item's diff only; the file attributes' part is empty.
        TaskChange(
            "ppsw-1",
            "Lines",
            "--- before: /etc/hermes.conf (content)\n+++ after: /etc/hermes.conf (content)\n@@ -1 +1,2 @@\n x = 1\n+y = 2\n",
        ),
        TaskChange(
            "ppsw-1",
            "Spool directory",
            "--- before\n+++ after\n@@ -1,4 +1,4 @@\n"
            ' {\n     "path": "/var/spool/exim4",\n-    "state": "absent"\n+    "state": "directory"\n }\n',
        ),
        TaskChange("ppsw-1", "common : Packages", "The following NEW packages will be installed:\n  exim4-daemon-heavy\n"),
        TaskChange("ppsw-1", "cyrus_store : Cyrus admin password", ""),
    ]


def test_unified_diffs_as_ansible_shows_them() -> None:
    # A new file: no before header; a last line without its newline is marked.
    assert unified_diff({"before": None, "after": "a = 1", "after_header": "/etc/new"}) == (
        "--- before\n+++ after: /etc/new\n@@ -0,0 +1 @@\n+a = 1\n\\ No newline at end of file\n"
    )
    # Diffs a module gave up on, and several in a list, one after the other.
    assert unified_diff([{"dst_binary": 1}, {"before": "a\n", "after": "b\n"}]) == (
        "diff skipped: destination file appears to be binary\n--- before\n+++ after\n@@ -1 +1 @@\n-a\n+b\n"
    )
    assert unified_diff({"src_larger": 104448}) == "diff skipped: source file size is greater than 104448\n"
    # Nothing to show.
    assert unified_diff(None) == unified_diff([]) == unified_diff({"before": "same\n", "after": "same\n"}) == ""


def test_a_no_log_result_shows_no_diff_whatever_is_left_in_it() -> None:
    leaked = {"changed": True, "_ansible_no_log": True, "diff": TEMPLATE_DIFF}
    change = task_change(_event("runner_on_ok", "Secret", res=leaked))
    assert change == TaskChange("ppsw-1", "Secret", "")
    items = {"changed": True, "results": [{**lineinfile_item("y = 2", True), "_ansible_no_log": True}]}
    assert task_change(_event("runner_on_ok", "Secret loop", res=items)) == TaskChange("ppsw-1", "Secret loop", "")


# Secrets.

# Made at each run, as a real key file's text: no key is kept in the repository.
KEY = (
    ec.generate_private_key(ec.SECP256R1())
    .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    .decode()
)
CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAKHBfpegPjMCMA0GCSqGSIb3DQEBCwUAMA0x\n-----END CERTIFICATE-----\n"
VAULT = {
    "vault_hermes_cyrus_admin_passwords": {"cyrus-1": "cyrus-Adm1n"},
    "vault_hermes_webmail_des_key": 'des"key\\24',
    "vault_hermes_user_passwords": {"dpc22": "hunter2", "fanf2": "hunter22", "ph10": None},
}


def test_every_vault_value_is_a_secret_and_no_username() -> None:
    assert vault_secrets(VAULT) == {"cyrus-Adm1n", 'des"key\\24', "hunter2", "hunter22"}
    assert vault_secrets({"a": ["x", {"b": "y"}], "n": 3, "empty": ""}) == {"x", "y"}


def test_secrets_and_private_keys_are_masked_and_nothing_else() -> None:
    mask = Mask.of(vault_secrets(VAULT))
    text = (
        "+cyrus_admin_password: cyrus-Adm1n\n"
        "-password hunter22 for fanf2, hunter2 for dpc22\n"
        # As JSON or YAML would escape it.
        '+des_key: "des\\"key\\\\24"\n'
    )
    assert mask(text) == (
        f"+cyrus_admin_password: {MASK}\n"
        # The longer of two secrets where both would match; usernames stay.
        f"-password {MASK} for fanf2, {MASK} for dpc22\n"
        f'+des_key: "{MASK}"\n'
    )
    # A key, in a diff's lines or not, ended or cut short; a certificate is no secret.
    diff = "".join(f"+{line}\n" for line in (KEY + CERTIFICATE).splitlines())
    assert mask(diff) == f"+{PRIVATE_KEY_HIDDEN}\n{diff[diff.index('+-----BEGIN CERTIFICATE') :]}"
    assert mask(f"tls_key: |\n  {KEY[:60]}") == f"tls_key: |\n  {PRIVATE_KEY_HIDDEN}"
    # A hunk whose context starts inside a key (its END line, the base64 lines before it), as
    # the last lines of a run's output can.
    body = KEY.splitlines()[1:]
    cut = "@@ -7,6 +7,6 @@\n" + "".join(f" {line}\n" for line in body) + "-tls = 1.2\n+tls = 1.3\n"
    assert mask(cut) == f"@@ -7,6 +7,6 @@\n{PRIVATE_KEY_HIDDEN}\n-tls = 1.2\n+tls = 1.3\n"
    assert mask("".join(f"    {line}\n" for line in body)) == f"{PRIVATE_KEY_HIDDEN}\n"
    # The positive control: text holding no secret is left as it is, with or without secrets to mask.
    plain = "queue_run_max = 10\nhunter is no password; cyrus-Adm is not one either\n" + CERTIFICATE
    assert mask(plain) == Mask.of([])(plain) == plain


def test_a_secret_in_a_structures_diff_is_masked() -> None:
    # A module reporting values (debconf, for one) as a structure, serialized for its diff.
    answer = 'pa"ss wörd'
    result = {"changed": True, "diff": {"before": {"question": "slapd/password1", "value": ""}, "after": {"value": answer}}}
    change = task_change(_event("runner_on_ok", "Answer", res=result))
    assert change is not None and "wörd" in change.diff
    masked = Mask.of([answer])(change.diff)
    assert "wörd" not in masked and f'+    "value": "{MASK}"' in masked


def test_many_passwords_are_masked() -> None:
    # A real estate's vault has a password per account (tens of thousands; the lab's are token_urlsafe).
    passwords = {f"user{n}": secrets.token_urlsafe(12) for n in range(5000)}
    mask = Mask.of(vault_secrets({"vault_hermes_user_passwords": passwords}))
    text = " ".join(f"{user}:{password}" for user, password in list(passwords.items())[::500])
    assert mask(text) == " ".join(f"{user}:{MASK}" for user in list(passwords)[::500])


def test_the_plan_masked_and_as_json() -> None:
    changes = [TaskChange("mx-1", "Passwords hunter2", "+pw hunter2\n"), TaskChange("mx-1", "Spool", "")]
    plan = Plan.of("+  queue_interval: 2m\n", changes, ["mx-2", "mx-1"]).masked(Mask.of(["hunter2"]))
    assert plan.hosts == {
        "mx-1": (TaskChange("mx-1", f"Passwords {MASK}", f"+pw {MASK}\n"), TaskChange("mx-1", "Spool", "")),
        "mx-2": (),
    }
    assert json.loads(plan.to_json()) == {
        "render": "+  queue_interval: 2m\n",
        "hosts": {"mx-1": [{"task": f"Passwords {MASK}", "diff": f"+pw {MASK}\n"}, {"task": "Spool", "diff": ""}], "mx-2": []},
    }


# A real run through ansible-runner in check mode: the events the runner hands over carry the diffs.

PROBE = probe_play("  roles:\n    - probe\n")
PROBE_TASKS = """\
- name: A file
  ansible.builtin.copy:
    dest: "{{ probe_dir }}/{{ inventory_hostname }}.conf"
    content: "a = 1\\n"
- name: Lines
  ansible.builtin.lineinfile:
    path: "{{ probe_dir }}/existing.conf"
    line: "{{ item }}"
  loop: [x = 1, y = 2]
- name: A secret
  ansible.builtin.copy:
    dest: "{{ probe_dir }}/secret"
    content: "s3cret\\n"
  no_log: true
- name: Skipped
  ansible.builtin.command: "true"
  when: false
"""


def test_a_check_run_hands_over_each_changed_task(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "roles" / "probe" / "tasks").mkdir(parents=True)
    (project / "probe.yml").write_text(PROBE)
    (project / "roles" / "probe" / "tasks" / "main.yml").write_text(PROBE_TASKS)
    probe_dir = tmp_path / "hosts"
    probe_dir.mkdir()
    (probe_dir / "existing.conf").write_text("x = 1\n")
    call = local_call(project, tmp_path / "runs", "one,", "--check", "--diff", f"--extra-vars=probe_dir={probe_dir}")
    changes: list[TaskChange] = []
    summary = run_playbook(call, SUBJECT, lambda _: None, lambda e: changes.extend(filter(None, [task_change(e)])))
    assert [(c.host, c.task) for c in changes] == [("one", "probe : A file"), ("one", "probe : Lines")]
    assert changes[0].diff == f"--- before\n+++ after: {probe_dir}/one.conf\n@@ -0,0 +1 @@\n+a = 1\n"
    assert changes[1].diff.endswith("@@ -1 +1,2 @@\n x = 1\n+y = 2\n")
    # Check mode changed nothing; Ansible counts the secret's task, which shows nothing.
    assert sorted(p.name for p in probe_dir.iterdir()) == ["existing.conf"]
    assert summary.hosts["one"].changed == 3


# hermesctl plan.


@pytest.fixture
def events() -> list[dict[str, Any]]:
    return copy.deepcopy(EVENTS)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ansible_runner.run replaced: each call's keyword arguments are kept, with the inventory's
    files as they were during the run; it hands ``events`` to the event handler, and fails on
    the last event's host unless that event is Ansible's recap."""
    made: list[dict[str, Any]] = []

    def run(**kwargs: Any) -> SimpleNamespace:
        handler = kwargs.pop("event_handler")
        inventory = Path(kwargs["inventory"][0])
        made.append({**kwargs, "inventory files": sorted(p.name for p in inventory.rglob("*.yml"))})
        artifacts = Path(kwargs["private_data_dir"]) / "artifacts" / str(len(made))
        artifacts.mkdir(parents=True)
        for event in copy.deepcopy(events):
            assert handler(event) is True
        last = events[-1]["event_data"]
        done = events[-1]["event"] == "playbook_on_stats"
        return SimpleNamespace(
            status="successful" if done else "failed",
            stats=last if done else {"failures": {last["host"]: 1}},
            config=SimpleNamespace(artifact_dir=str(artifacts)),
            stdout=io.StringIO(
                "--- before: /etc/cyrus.conf\n+admin: cyrus_admin_passwords of cyrus-1\nfatal: [ppsw-2]: FAILED!\n"
            ),
        )

    monkeypatch.setattr(ansible_runner, "run", run)
    return made


def site_estate(tmp_path: Path) -> tuple[Path, tuple[str | Path, ...]]:
    """A rendered estate of its own under ``tmp_path`` and the options that plan it as a real one."""
    home = tmp_path / "my estate"
    estate = rendered_estate(home)
    vault, password, certificates = site_files(home, estate)
    return estate, ("--vault", vault, "--vault-password-file", password, "--certificates", certificates)


def test_plan_needs_what_a_deploy_needs(tmp_path: Path, calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "LAB_STATE", tmp_path / "lab state")
    estate, site = site_estate(tmp_path)
    code, output = hermesctl("plan", "-e", estate)
    assert code == 2 and "--vault and --certificates required without --lab" in output
    code, output = hermesctl("plan", "-e", estate, "--lab", *site[:2])
    assert code == 2 and "--vault: only for a real estate" in output
    code, output = hermesctl("plan", "-e", estate, "--lab", "--playbook", "nothing.yml")
    assert code == 2 and "--playbook: no playbooks/nothing.yml" in output
    # A stale render is no refusal, and is not written: here the lab's SSH access stops the plan.
    estate.write_text(estate.read_text().replace("queue_interval: 1m", "queue_interval: 2m"))
    code, output = hermesctl("plan", "-e", estate, "--lab")
    assert code == 2 and "run hermesctl lab up first" in output
    assert hermesctl("render", "--check", "-e", estate)[0] == 1
    assert calls == []
    # The control: the same plan of a real estate runs.
    assert hermesctl("plan", "-e", estate, *site)[0] == 0
    assert len(calls) == 1


def test_plan_checks_the_new_render_and_masks_what_it_prints(
    tmp_path: Path, calls: list[dict[str, Any]], events: list[dict[str, Any]]
) -> None:
    estate, site = site_estate(tmp_path)
    home = estate.parent.parent
    committed = home / "rendered" / "lab"
    estate.write_text(estate.read_text().replace("queue_interval: 1m", "queue_interval: 2m"))
    # A secret of the vault (site_files'), a private key, and text that is neither, in a task's diff.
    leak = {"before": "", "after": "password of dpc22\n" + KEY + "queue_run_max = 10\n", "after_header": "/etc/leak"}
    events.insert(-1, _event("runner_on_ok", "Leak", res={"changed": True, "diff": leak}))
    result = runner.invoke(cli.app, ["plan", "-e", str(estate), *map(str, site), "--json"], env={"COLUMNS": "1000"})
    assert result.exit_code == 0, result.output
    # The deploy's call in check mode, against the new render in a directory of its own, gone since.
    (call,) = calls
    assert shlex.split(call["cmdline"])[:2] == ["--diff", "--check"]
    scratch = Path(call["inventory"][0])
    assert scratch != committed and scratch.name == "lab" and not scratch.exists()
    assert call["inventory files"] and call["private_data_dir"] == str(home / ".hermes" / "lab" / "runs" / "site")
    # The committed render is untouched.
    assert hermesctl("render", "--check", "-e", estate)[0] == 1
    plan = json.loads(result.stdout)
    assert "-  queue_interval: 1m" in plan["render"] and "+  queue_interval: 2m" in plan["render"]
    assert [c["task"] for c in plan["hosts"]["ppsw-1"]] == [
        "mta : Exim's configuration",
        "Lines",
        "Spool directory",
        "common : Packages",
        "cyrus_store : Cyrus admin password",
        "Leak",
    ]
    assert plan["hosts"]["ppsw-1"][-1]["diff"].endswith(f"+{MASK}\n+{PRIVATE_KEY_HIDDEN}\n+queue_run_max = 10\n")
    assert plan["hosts"]["ppsw-2"] == []
    assert "password of dpc22" not in result.output and "secretbase64body" not in result.output
    # As text: each task's diff under its host and name, then a line per host, and the last line.
    code, output = hermesctl("plan", "-e", estate, *site)
    assert code == 0, output
    assert "ppsw-1: mta : Exim's configuration\n--- before: /etc/exim4/exim4.conf\n" in output
    assert "ppsw-1: cyrus_store : Cyrus admin password\n(would change; no diff shown)\n" in output
    assert f"+{MASK}\n+{PRIVATE_KEY_HIDDEN}\n" in output and "password of dpc22" not in output
    record = home / ".hermes" / "lab" / "runs" / "site" / "artifacts" / "2"
    assert output.splitlines()[-1] == f"site.yml on lab in check mode: 5 changed, nothing deployed; record in {record}"
    assert json.loads((record / "summary.json").read_text())["check"] is True


def test_a_failed_check_run_shows_what_it_found_masked_and_exits_4(
    tmp_path: Path, calls: list[dict[str, Any]], events: list[dict[str, Any]]
) -> None:
    estate, site = site_estate(tmp_path)
    events[-1] = _event("runner_on_failed", "Exim's configuration", host="ppsw-2", res={"msg": "failed"})
    code, output = hermesctl("plan", "-e", estate, *site)
    assert code == 4, output
    # What the run found before it failed, then the error: Ansible's last lines, secrets masked.
    assert "ppsw-1: mta : Exim's configuration\n--- before: /etc/exim4/exim4.conf\n" in output
    assert "site.yml failed on ppsw-2 (failed)" in output
    assert f"+admin: {MASK}\nfatal: [ppsw-2]: FAILED!" in output
    assert "cyrus_admin_passwords of cyrus-1" not in output
    assert " changed, nothing deployed; " not in output
