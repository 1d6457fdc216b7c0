"""The lab's Internet side: a network outside the estate, with a stranger's client and an
outside mail exchanger, so the estate can be used as the world uses it.

* ``internet-client`` (:data:`CLIENT`): sends as a stranger would, from an address in no relay
  network. Its resolver is the Internet's.
* ``internet-mx`` (:data:`MX`): the Internet's mail exchanger for ``internet.test``, and the
  mail server of any domain a test routes to it (Exim, accepting every message into one
  Maildir, :data:`SINK_MAILDIR`, but refusing, as a server refuses a user it does not have,
  every recipient whose local part begins :data:`NO_SUCH_USER`) and the Internet's resolver
  (dnsmasq): it answers for ``internet.test``, sends each estate's zones to that estate's DNS
  hosts as a delegation would (one file per estate), and everything else to podman's
  resolver, which asks this machine's. The lab estate names it as its DNS forwarder.

The client runs the lab's base image, the MX :func:`ensure_internet_image` (the base image
plus Exim and dnsmasq, built once per base image); both are on :data:`NETWORK`, TEST-NET-2
(RFC 5737), which no estate may use as its own, and every estate's lab shares them. The lab
routes between an estate's networks and this one without address translation
(:mod:`hermes.lab.containers`), so the estate sees the client's own address.

Pure but for :func:`ensure_internet_image`, :func:`configure` and :func:`forget`.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import netaddr

from hermes.lab.podman import podman
from hermes.loader import LoadedEstate
from hermes.render.dns import zone_records

NETWORK = "hermes-internet"
SUBNET = netaddr.IPNetwork("198.51.100.0/24")
GATEWAY = "198.51.100.1"
DOMAIN = "internet.test"
CLIENT = ("internet-client", "198.51.100.10")
MX = ("internet-mx", "198.51.100.25")
# Where the outside MX keeps every message it accepted, one file each (Maildir).
SINK_MAILDIR = "/var/mail/internet"
# The local parts the outside MX refuses at RCPT (550), for tests of what the estate does then.
NO_SUCH_USER = "no-such-"
IMAGE_REPOSITORY = "localhost/hermes-internet"
PACKAGES = ("dnsmasq", "exim4-daemon-light")

# The configuration is baked in, so each service starts with it at boot (a restart at `lab up`
# raced the boot's own start: the first Exim kept port 25 on loopback only).
_CONTAINERFILE = """\
FROM {base}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {packages} \\
 && rm -rf /var/lib/apt/lists/*
COPY exim4.conf /etc/exim4/exim4.conf
COPY internet.conf /etc/dnsmasq.d/internet.conf
"""

# Debian's Exim reads /etc/exim4/exim4.conf, when it exists, instead of its generated one.
EXIM_CONF = f"""\
# hermes lab: the Internet's mail exchanger. Accepts every message for any address into
# {SINK_MAILDIR}, so tests can count what the estate sent out, but for a local part that
# begins {NO_SUCH_USER}: a user this server does not have. Written by hermesctl lab up.
primary_hostname = mx.{DOMAIN}
acl_smtp_rcpt = check_rcpt
host_lookup =
rfc1413_hosts =
never_users = root
keep_environment =

begin acl

check_rcpt:
  deny    local_parts = ^{NO_SUCH_USER}
          message = no such user here
  accept

begin routers

sink:
  driver = accept
  transport = sink

begin transports

sink:
  driver = appendfile
  directory = {SINK_MAILDIR}
  maildir_format
  create_directory
  envelope_to_add
  return_path_add
  user = Debian-exim
  group = mail
  mode = 0640

begin retry

*  *  F,1h,1m
"""

RESOLVER_CONF = f"""\
# hermes lab: the Internet's resolver; each estate's zones are in a file of their own beside it.
no-resolv
no-hosts
bind-interfaces
listen-address={MX[1]}
server={GATEWAY}
mx-host={DOMAIN},mx.{DOMAIN},10
host-record=mx.{DOMAIN},{MX[1]}
host-record=client.{DOMAIN},{CLIENT[1]}
"""


def _build_context(base: str) -> dict[str, str]:
    return {
        "Containerfile": _CONTAINERFILE.format(base=base, packages=" ".join(PACKAGES)),
        "exim4.conf": EXIM_CONF,
        "internet.conf": RESOLVER_CONF,
    }


def image_ref(base: str) -> str:
    """The Internet hosts' image: tagged by a digest of its base and recipe, so it is rebuilt when either changes."""
    digest = hashlib.sha256(json.dumps(_build_context(base), sort_keys=True).encode()).hexdigest()
    return f"{IMAGE_REPOSITORY}:{digest[:12]}"


def _delegation_path(estate: str) -> str:
    return f"/etc/dnsmasq.d/estate-{estate}.conf"


def delegation_conf(loaded: LoadedEstate) -> str:
    """The estate's zones, sent to its DNS hosts, as the delegation to its name servers would."""
    estate = loaded.estate
    servers = [str(loaded.addresses[h]) for h in sorted(estate.services.dns.hosts)]
    lines = [f"server=/{zone}/{server}" for zone in sorted(zone_records(estate, loaded.addresses)) for server in servers]
    return f"# hermes lab: the {estate.name} estate's zones. Written by hermesctl lab up.\n" + "\n".join(lines) + "\n"


def client_resolv_conf() -> str:
    return f"# hermes lab: the Internet's resolver (internet-mx).\nnameserver {MX[1]}\n"


def ensure_internet_image(base: str, say: Callable[[str], None]) -> str:
    """The Internet hosts' image, built from ``base`` unless it exists; its reference."""
    ref = image_ref(base)
    if podman("image", "exists", ref, check=False).returncode == 0:
        return ref
    say(f"building {ref} ({', '.join(PACKAGES)})")
    with tempfile.TemporaryDirectory(prefix="hermes-internet-") as context:
        for name, content in _build_context(base).items():
            (Path(context) / name).write_text(content)
        podman("build", "--runtime=runc", f"--tag={ref}", context)
    return ref


def _install(host: str, path: str, content: str) -> bool:
    """Write ``content`` to ``path`` in the container unless it is there already; True if written."""
    current = podman("exec", host, "cat", path, check=False)
    if current.returncode == 0 and current.stdout == content:
        return False
    podman("exec", "--interactive", host, "sh", "-c", f"cat > {path}", stdin=content)
    return True


def configure(loaded: LoadedEstate) -> list[str]:
    """Configure the Internet hosts, and the resolver for the estate; return what changed."""
    changes = []
    mx = MX[0]
    if _install(mx, _delegation_path(loaded.estate.name), delegation_conf(loaded)):
        podman("exec", mx, "systemctl", "restart", "dnsmasq")
        changes.append(f"{mx}: resolver sends the {loaded.estate.name} estate's zones to its DNS hosts")
    # podman writes the container's resolv.conf at every start.
    if _install(CLIENT[0], "/etc/resolv.conf", client_resolv_conf()):
        changes.append(f"{CLIENT[0]}: resolver set to {mx}")
    return changes


def forget(estate: str) -> list[str]:
    """Take the estate's zones out of the Internet's resolver (if it is running)."""
    removed = podman("exec", MX[0], "rm", _delegation_path(estate), check=False)
    if removed.returncode != 0:
        return []
    podman("exec", MX[0], "systemctl", "restart", "dnsmasq", check=False)
    return [f"{MX[0]}: {estate}'s zones removed"]
