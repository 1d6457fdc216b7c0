#!/usr/bin/env bash
# The proxy's two possible back-end legs, side by side in one run, on a running access scenario
# (or lab): the deployed one (implicit TLS on 993, P-256 first) and the old one (STARTTLS on 143,
# OpenSSL's default curves), alternating for two rounds, each measured by benchmark-proxy.py.
# The old leg is made by editing the proxy's map (used at the next login) and dropping
# ssl_curve_list (a restart); the deployed files are put back at the end.
#
#   scripts/benchmark-proxy-legs.sh ac-hub 10.247.0.10 10.247.0.21 bob <password file>
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
proxy_host=$1 proxy=$2 store=$3 user=$4 password_file=$5
export CONTAINERS_CONF="$root/orchestrator/hermes/lab/containers.conf"
on_proxy() { podman exec "$proxy_host" bash -c "$1"; }

map=/etc/dovecot/hermes/imap.map conf=/etc/dovecot/dovecot.conf
on_proxy "cp -p $map /root/imap.map.deployed && cp -p $conf /root/dovecot.conf.deployed"
deployed() {
  on_proxy "cp -p /root/imap.map.deployed $map && touch $map && cp -p /root/dovecot.conf.deployed $conf && systemctl restart dovecot"
}
old() {
  on_proxy "sed -e 's/port=993 ssl=yes/port=143 starttls=yes/' /root/imap.map.deployed > $map && sed -e '/^ssl_curve_list/d' /root/dovecot.conf.deployed > $conf && systemctl restart dovecot"
}
trap deployed EXIT
for round in 1 2; do
  for leg in old deployed; do
    "$leg"
    sleep 2
    echo "== round $round: $leg back-end leg"
    "$root/.venv/bin/python" "$root/scripts/benchmark-proxy.py" --proxy "$proxy" --store "$store" --user "$user" \
      --password-file "$password_file" --ca "$root/.lab/pki/ca.crt" --logins 150
  done
done
