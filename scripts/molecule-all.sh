#!/usr/bin/env bash
# Run molecule scenarios (all under molecule/, or those named) against the lab base image.
#
#   scripts/molecule-all.sh            # every scenario
#   scripts/molecule-all.sh common     # only molecule/common
#
# Builds or reuses the base image (python -m hermes.lab.image), exports what
# .config/molecule/config.yml needs (HERMES_BASE_IMAGE, HERMES_LAB_CACHE, CONTAINERS_CONF,
# ANSIBLE_STRATEGY_PLUGINS),
# then runs `molecule test` per scenario and stops at the first failure. Containers and
# networks of the scenario are destroyed on success, failure and interruption alike.
# Needs root (rootful podman, debootstrap).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

if [[ -x "$repo/.venv/bin/python" ]]; then
    export PATH="$repo/.venv/bin:$PATH"
fi
export PYTHONPATH="$repo/orchestrator${PYTHONPATH:+:$PYTHONPATH}"
export CONTAINERS_CONF="$repo/orchestrator/hermes/lab/containers.conf"
export HERMES_LAB_CACHE="${HERMES_LAB_CACHE:-/var/cache/hermes-lab}"
export MOLECULE_PROJECT_DIRECTORY="$repo"
export ANSIBLE_ROLES_PATH="$repo/roles"

if [[ $# -gt 0 ]]; then
    scenarios=("$@")
else
    scenarios=()
    for file in molecule/*/molecule.yml; do
        [[ -e "$file" ]] && scenarios+=("$(basename "$(dirname "$file")")")
    done
fi
if [[ ${#scenarios[@]} -eq 0 ]]; then
    echo "molecule-all: no scenario under molecule/" >&2
    exit 1
fi
for name in "${scenarios[@]}"; do
    if [[ ! -f "molecule/$name/molecule.yml" ]]; then
        echo "molecule-all: no scenario molecule/$name" >&2
        exit 1
    fi
done

HERMES_BASE_IMAGE="$(python -m hermes.lab.image)"
export HERMES_BASE_IMAGE
# Mitogen's strategy plugins, which the shared config selects (as hermes.deploy does).
ANSIBLE_STRATEGY_PLUGINS="$(python -c 'from hermes.deploy import mitogen_strategies; print(mitogen_strategies())')"
export ANSIBLE_STRATEGY_PLUGINS
echo "molecule-all: base image $HERMES_BASE_IMAGE" >&2

current=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$current" ]]; then
        echo "molecule-all: destroying what scenario $current left" >&2
        molecule destroy --scenario-name "$current" >/dev/null 2>&1 || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for name in "${scenarios[@]}"; do
    current="$name"
    started=$SECONDS
    echo "molecule-all: scenario $name" >&2
    # --destroy=always (molecule's default) tears down on failure too; the trap covers
    # interruptions.
    molecule test --scenario-name "$name" --destroy=always
    echo "molecule-all: scenario $name passed in $((SECONDS - started))s" >&2
    current=""
done
echo "molecule-all: ${#scenarios[@]} passed, 0 failed"
