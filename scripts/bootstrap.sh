#!/usr/bin/env bash
# Install what hermes needs on a Debian 12 machine, once: the system packages for the lab
# (podman, runc, debootstrap) and the project's Python environment in .venv.
# Safe to run again: it installs only what is missing or changed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# chromium, chromium-driver and libnss3-tools: the browser the webmail tests drive, with the
# lab CA in its own certificate store. openssh-client: Ansible reaches every host over SSH.
packages=(podman runc netavark aardvark-dns iptables debootstrap uidmap openssh-client python3 python3-venv python3-pip git ca-certificates
  chromium chromium-driver libnss3-tools)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The venv is rebuilt only when pyproject.toml changes.
stamp=$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)
if [[ ! -x "$root/.venv/bin/python" ]]; then
  python3 -m venv "$root/.venv"
fi
if [[ "$(cat "$root/.venv/.hermes-installed" 2>/dev/null)" != "$stamp" ]]; then
  echo "bootstrap: installing Python dependencies into .venv" >&2
  "$root/.venv/bin/pip" install -q --upgrade pip
  "$root/.venv/bin/pip" install -q -e "$root[test]"
  echo "$stamp" > "$root/.venv/.hermes-installed"
fi
