#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install what is needed, validate and render the
# lab estate, bring its hosts up as containers, deploy the estate to them, check it as its
# users would, and print how to use it.
#   scripts/lab.sh [ESTATE]     (default: inventory/estates/lab.yml)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
estate=${1:-$root/inventory/estates/lab.yml}
"$root/scripts/bootstrap.sh"
hermesctl=$root/.venv/bin/hermesctl
"$hermesctl" validate --estate "$estate"
"$hermesctl" render --estate "$estate"
"$hermesctl" lab up --estate "$estate"
"$hermesctl" deploy --lab --estate "$estate"
"$hermesctl" lab status --estate "$estate"
"$hermesctl" check --lab --estate "$estate"
"$hermesctl" lab guide --estate "$estate"
