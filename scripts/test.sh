#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what it needs, then runs
# lint, type checks, the render check, unit tests, the lab tests and every molecule scenario.
#   scripts/test.sh          everything (what CI runs)
#   scripts/test.sh --fast   unit tests, lint and the `common` scenario only
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
fast=false
[[ "${1:-}" == "--fast" ]] && fast=true

step() { printf '\n== %s\n' "$*" >&2; }

step "bootstrap"
scripts/bootstrap.sh
export PATH="$root/.venv/bin:$PATH"

step "lint: ruff, mypy, yamllint, ansible-lint, argument specs"
# The Python shipped in roles and molecule: *.py, and scripts known by their shebang.
mapfile -t shipped < <(find roles molecule -type f \( -name '*.py' -o -exec sh -c 'head -n 1 "$1" | grep -q "^#!.*python"' sh {} \; \) -print | sort)
ruff check orchestrator tests scripts "${shipped[@]}"
ruff format --check orchestrator tests scripts "${shipped[@]}"
mypy
# Each extension-less script would otherwise be a module named __main__.
mypy --scripts-are-modules "${shipped[@]}"
yamllint --strict .
ansible-lint
python scripts/check-argument-specs.py

step "rendered inventories are current"
for estate in inventory/estates/*.yml; do
  hermesctl render --check --estate "$estate" | tail -n 1
done

step "unit tests"
python -m pytest -m "not lab" tests

step "molecule scenarios and the lab"
python -m hermes.lab.image >/dev/null
if $fast; then
  scripts/molecule-all.sh common
else
  python -m pytest -m lab tests
  scripts/molecule-all.sh
fi
