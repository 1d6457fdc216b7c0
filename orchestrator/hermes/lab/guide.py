"""How to use a deployed lab, as ``hermesctl lab guide`` prints it (and scripts/lab.sh at its
end): where the services are, a user to try them as and where their password is, and how to
read mail in a mail client and in a browser. Pure: estate and paths in, text out."""

from __future__ import annotations

from pathlib import Path

from hermes.lab import internet
from hermes.loader import LoadedEstate
from hermes.render.dns import IMAP, SMTP, WEBMAIL


def guide(loaded: LoadedEstate, state: Path, ca: Path) -> str:
    estate = loaded.estate
    services, ports, zone = estate.services, estate.policies.ports, estate.domains.hosts

    def first(hosts: list[str]) -> str:
        return str(loaded.addresses[sorted(hosts)[0]])

    mx, proxy, webmail = first(services.mx.hosts), first(services.proxy.hosts), first(services.webmail.hosts)
    pair = services.store_pairs[0]
    user = min(u for u, p in loaded.placement.items() if p == pair.name)
    vault, password = state / "vault.yml", state / "vault-password"
    names = {f"{SMTP}.{zone}": mx, f"{IMAP}.{zone}": proxy, f"{WEBMAIL}.{zone}": webmail}
    hosts_lines = "\n".join(f"    {address}  {name}" for name, address in names.items())
    dns = ", ".join(str(loaded.addresses[h]) for h in sorted(services.dns.hosts))
    return f"""\
Estate {estate.name}: deployed to the lab. Every host is a container on this machine; `hermesctl lab status` lists them.

Try it as {user} (mail {user}@{estate.domains.mail}, on store pair {pair.name}). The password:
    .venv/bin/ansible-vault view {vault} --vault-password-file {password} | grep ' {user}:'

The services answer by name; the estate's DNS ({dns}) knows them, or add to /etc/hosts:
{hosts_lines}
and trust the lab's CA, {ca}.

In a mail client: IMAP {IMAP}.{zone} port {ports.imaps.port} (TLS), SMTP {SMTP}.{zone} port {ports.submission.port}
(STARTTLS), user name {user}. For example:
    mutt -f 'imaps://{user}@{IMAP}.{zone}/' -e 'set ssl_ca_certificates_file={ca}'

In a browser: https://{WEBMAIL}.{zone}/ (with the CA trusted). Without touching /etc/hosts:
    chromium --host-resolver-rules='MAP {WEBMAIL}.{zone} {webmail}' https://{WEBMAIL}.{zone}/

From the Internet side: `podman exec -it {internet.CLIENT[0]} bash` is a stranger's machine; mail the estate
sends to anyone@{internet.DOMAIN} lands in {internet.MX[0]}:{internet.SINK_MAILDIR}.

Check the whole estate as its users would: .venv/bin/hermesctl check --lab
"""
