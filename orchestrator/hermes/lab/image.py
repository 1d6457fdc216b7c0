"""The lab's base image: Debian 12 (bookworm) with systemd as PID 1, built locally.

No registry can be reached, so the image is built with ``debootstrap`` and loaded with
``podman import``. Its tag is a hash of the recipe (suite, mirror, package list, files baked
in, :data:`RECIPE_VERSION`), so it is rebuilt only when the recipe changes:
``localhost/hermes-base:bookworm-<hash12>``.

Everything podman-related that the Python lab and molecule must agree on lives here:
:func:`podman_env` (selects the project's ``containers.conf``) and :func:`podman_run_args`
(the options every lab container is started with). ``.config/molecule/config.yml`` spells
out the same options for molecule's podman driver.

Caches live under :func:`cache_root` (``/var/cache/hermes-lab``, or ``$HERMES_LAB_CACHE``):

* ``debootstrap/`` -- the .debs debootstrap downloads (``--cache-dir``), kept across builds;
* ``apt-archives/`` -- the shared pool of downloaded .debs. Every lab container sees it as
  an overlay at ``/var/cache/apt/archives`` (``:O``: reads come from the pool, writes stay
  in the container) and read-write at ``/var/cache/hermes-lab-apt``, where a dpkg hook
  baked into the image saves each package apt is about to install. So a package is
  downloaded once per machine, and containers never share apt's lock file: a plain shared
  bind mount makes concurrent apt runs in two containers fail at once with "Could not get
  lock /var/cache/apt/archives/lock" (fcntl locks work across containers on one kernel).

Only :func:`ensure_base_image` has side effects; everything else is a pure helper.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hermes.errors import ExitCode, HermesError, LabError

# Bump when the build procedure changes in a way the other recipe fields do not show.
RECIPE_VERSION = "2"

IMAGE_REPOSITORY = "localhost/hermes-base"
DEFAULT_CACHE_ROOT = Path("/var/cache/hermes-lab")
CACHE_ENV = "HERMES_LAB_CACHE"
CONTAINERS_CONF = Path(__file__).with_name("containers.conf")

# Where every lab container sees the shared apt archive pool: as an overlay (apt's own
# archive directory) and read-write (for the hook that adds to the pool).
APT_ARCHIVES_MOUNT = "/var/cache/apt/archives"
APT_POOL_MOUNT = "/var/cache/hermes-lab-apt"

# What a host of the estate has before any role ran: enough for systemd to boot, for
# Ansible (python3, python3-apt for the apt module) and testinfra (procps, iproute2) to
# work, and for TLS to the package mirror and lab services (ca-certificates, openssl).
# dbus lets hostnamectl/timedatectl/loginctl talk to systemd as on a real host; Ansible
# reaches the host over SSH (hermes.lab.ssh), as it reaches a real one.
PACKAGES: tuple[str, ...] = (
    "ca-certificates",
    "dbus",
    "iproute2",
    "less",
    "openssh-server",
    "openssl",
    "procps",
    "python3",
    "python3-apt",
    "systemd",
    "systemd-sysv",
)

_SOURCES_LIST = """\
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
"""

# apt-get keeps downloaded .debs by default; `apt` does not unless told. Keep them with
# both, and copy each package dpkg is about to install into the shared pool (when the
# container has it mounted). No docker-clean style hook is installed.
_APT_KEEP_DEBS = """\
// hermes lab base image: keep downloaded packages and add them to the lab's shared pool.
APT::Keep-Downloaded-Packages "true";
Binary::apt::APT::Keep-Downloaded-Packages "true";
DPkg::Pre-Install-Pkgs { "/usr/local/sbin/hermes-lab-save-debs"; };
"""

# Reads .deb paths (one per line) on stdin; never makes apt fail.
_SAVE_DEBS = f"""\
#!/bin/sh
# hermes lab: copy the packages dpkg is about to install into the shared pool.
pool={APT_POOL_MOUNT}
while read -r deb; do
    case "$deb" in
        *.deb) ;;
        *) continue ;;
    esac
    [ -d "$pool" ] && [ -w "$pool" ] || continue
    name=${{deb##*/}}
    [ -e "$pool/$name" ] && continue
    tmp="$pool/.$name.$$"
    if cp "$deb" "$tmp" 2>/dev/null; then
        mv -f "$tmp" "$pool/$name" 2>/dev/null || rm -f "$tmp"
    else
        rm -f "$tmp"
    fi
done
exit 0
"""

# podman runs lab containers with --no-hosts, so this file is the container's own and a
# role can manage it like on a real host.
_HOSTS = """\
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""

# podman bind-mounts its own resolv.conf and hostname over these; the image's copies only
# replace what debootstrap copied from the build machine.
_RESOLV_CONF = "# Replaced at container start (podman) or by the common role.\n"
_HOSTNAME = "localhost\n"

# On this machine's hybrid cgroup layout systemd inside a container misses some "cgroup empty"
# events: a stop whose processes have all exited then waits out the 90 s stop timeout (measured:
# one `systemctl stop dovecot` in three). A shorter timeout bounds that wait in the lab; every
# lab service stops well within it. Real hosts (cgroup v2) are untouched.
_SYSTEMD_LAB = """\
# hermes lab: bound the wait for stops that systemd in a container does not see finish.
[Manager]
DefaultTimeoutStopSec=20s
"""

# The build removes the host keys openssh-server's postinst made, so each container makes its
# own at first boot, before sshd's config test (which fails without keys).
_SSH_HOST_KEYS = """\
# hermes lab: every container makes its own SSH host keys; the image has none.
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
"""


@dataclass(frozen=True)
class BakedFile:
    """A file written into the root file system after debootstrap."""

    content: str
    mode: int = 0o644


@dataclass(frozen=True)
class Recipe:
    """Everything that determines the base image's content."""

    version: str = RECIPE_VERSION
    suite: str = "bookworm"
    variant: str = "minbase"
    mirror: str = "http://deb.debian.org/debian"
    packages: tuple[str, ...] = PACKAGES
    files: Mapping[str, BakedFile] = field(
        default_factory=lambda: {
            "/etc/apt/sources.list": BakedFile(_SOURCES_LIST),
            "/etc/apt/apt.conf.d/01hermes-keep-debs": BakedFile(_APT_KEEP_DEBS),
            "/usr/local/sbin/hermes-lab-save-debs": BakedFile(_SAVE_DEBS, 0o755),
            "/etc/hosts": BakedFile(_HOSTS),
            "/etc/resolv.conf": BakedFile(_RESOLV_CONF),
            "/etc/hostname": BakedFile(_HOSTNAME),
            "/etc/systemd/system/ssh.service.d/hermes-lab-host-keys.conf": BakedFile(_SSH_HOST_KEYS),
            "/etc/systemd/system.conf.d/hermes-lab-stop-timeout.conf": BakedFile(_SYSTEMD_LAB),
            # Empty: systemd gives each container its own machine id at first boot.
            "/etc/machine-id": BakedFile("", 0o444),
        }
    )

    def digest(self) -> str:
        """A stable hex digest of the recipe (sha256 over a canonical JSON form)."""
        canonical = {
            "version": self.version,
            "suite": self.suite,
            "variant": self.variant,
            "mirror": self.mirror,
            "packages": sorted(set(self.packages)),
            "files": {path: {"content": f.content, "mode": f"{f.mode:04o}"} for path, f in sorted(self.files.items())},
        }
        blob = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


DEFAULT_RECIPE = Recipe()


def image_ref(recipe: Recipe = DEFAULT_RECIPE) -> str:
    """The image reference for ``recipe``, e.g. ``localhost/hermes-base:bookworm-0123abcd4567``."""
    return f"{IMAGE_REPOSITORY}:{recipe.suite}-{recipe.digest()[:12]}"


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """The lab's cache directory: ``$HERMES_LAB_CACHE`` or ``/var/cache/hermes-lab``."""
    value = (os.environ if env is None else env).get(CACHE_ENV, "")
    return Path(value) if value else DEFAULT_CACHE_ROOT


def debootstrap_cache_dir(root: Path) -> Path:
    """Where debootstrap keeps the .debs it downloaded (``--cache-dir``)."""
    return root / "debootstrap"


def apt_archive_dir(root: Path) -> Path:
    """The host directory holding the shared pool of .debs (see the module docstring)."""
    return root / "apt-archives"


def podman_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment to run podman (or molecule, or Ansible driving podman) with.

    A copy of ``base`` (default: ``os.environ``) with ``CONTAINERS_CONF`` pointing at the
    project's containers.conf (runtime runc, ulimits within the machine's hard limits).
    """
    env = dict(os.environ if base is None else base)
    env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    return env


def podman_run_args(*, cache: Path | None = None) -> list[str]:
    """Options for ``podman run`` shared by every lab container (molecule: same options).

    The caller adds ``--name``/``--hostname`` (the host's name: podman's DNS resolves
    container names), ``--network``/``--ip``, then the image and ``/sbin/init``.
    """
    root = cache_root() if cache is None else cache
    return [
        "--runtime=runc",
        # systemd as PID 1: podman mounts tmpfs on /run, /run/lock, /tmp, a writable
        # cgroup for systemd, sets container=podman and stops with SIGRTMIN+3.
        "--systemd=always",
        # No --cgroupns: podman's default (host on cgroup v1, private on v2) is the one
        # that works. With --cgroupns=private on this v1/hybrid kernel, systemd sees its
        # cgroup as "/../../init.scope" and `systemctl daemon-reexec` kills PID 1.
        # /etc/hosts belongs to the host (the common role), as on a real machine.
        "--no-hosts",
        # The shared apt pool: overlay for apt (private lock and writes), rw for the hook.
        f"--volume={apt_archive_dir(root)}:{APT_ARCHIVES_MOUNT}:O",
        f"--volume={apt_archive_dir(root)}:{APT_POOL_MOUNT}:rw",
    ]


def debootstrap_command(rootfs: Path, *, recipe: Recipe = DEFAULT_RECIPE, cache_dir: Path) -> list[str]:
    """The debootstrap invocation building ``recipe`` into ``rootfs``."""
    return [
        "debootstrap",
        f"--variant={recipe.variant}",
        f"--include={','.join(sorted(set(recipe.packages)))}",
        f"--cache-dir={cache_dir}",
        recipe.suite,
        str(rootfs),
        recipe.mirror,
    ]


def import_command(ref: str, *, recipe: Recipe = DEFAULT_RECIPE) -> list[str]:
    """The ``podman import`` invocation reading a root tarball from stdin."""
    return [
        "podman",
        "import",
        "--change=CMD=/sbin/init",
        "--change=STOPSIGNAL=SIGRTMIN+3",
        "--change=ENV=container=podman",
        f"--change=LABEL=org.hermes.recipe={recipe.digest()}",
        f"--change=LABEL=org.hermes.recipe-version={recipe.version}",
        f"--message=hermes lab base image ({recipe.suite} {recipe.variant})",
        "-",
        ref,
    ]


def _apt_user_ids(rootfs: Path) -> tuple[int, int]:
    """uid and gid of ``_apt`` in the built root (owner of the archive cache's partial/)."""
    for line in (rootfs / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == "_apt":
            return int(fields[2]), int(fields[3])
    raise LabError(f"the base image has no _apt user ({rootfs}/etc/passwd)")


def _run(cmd: list[str], *, env: Mapping[str, str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(cmd, env=env, text=True, capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise LabError(f"{what}: {cmd[0]} is not installed") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise LabError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prepare_apt_archives(root: Path, uid: int, gid: int) -> None:
    archives = apt_archive_dir(root)
    partial = archives / "partial"
    partial.mkdir(parents=True, exist_ok=True)
    archives.chmod(0o755)
    # apt downloads as _apt into partial/; without this it warns and downloads as root.
    os.chown(partial, uid, gid)
    partial.chmod(0o700)


def _build(ref: str, recipe: Recipe, root: Path, env: Mapping[str, str], say: Callable[[str], None]) -> None:
    build_parent = root / "build"
    build_parent.mkdir(parents=True, exist_ok=True)
    debs = debootstrap_cache_dir(root)
    debs.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="rootfs-", dir=build_parent))
    rootfs = workdir / "rootfs"
    try:
        started = time.monotonic()
        say(f"debootstrap {recipe.suite} ({recipe.variant}) into {rootfs}")
        _run(debootstrap_command(rootfs, recipe=recipe, cache_dir=debs), env=env, what="debootstrap")
        say(f"debootstrap done in {time.monotonic() - started:.0f}s")

        for path, baked in recipe.files.items():
            target = rootfs / path.lstrip("/")
            if target.is_symlink():
                target.unlink()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(baked.content)
            target.chmod(baked.mode)
        (rootfs / "var/lib/dbus/machine-id").unlink(missing_ok=True)
        for host_key in (rootfs / "etc/ssh").glob("ssh_host_*"):
            host_key.unlink()
        # Downloaded .debs stay in the debootstrap cache, not in the image.
        for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        uid, gid = _apt_user_ids(rootfs)
        _prepare_apt_archives(root, uid, gid)

        say(f"podman import {ref}")
        started = time.monotonic()
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-c", "."],
            stdout=subprocess.PIPE,
        )
        try:
            imported = subprocess.run(
                import_command(ref, recipe=recipe),
                stdin=tar.stdout,
                env=env,
                text=True,
                capture_output=True,
                check=False,
            )
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar_rc = tar.wait()
        if tar_rc != 0 or imported.returncode != 0:
            raise LabError(
                f"podman import of {ref} failed (tar exit {tar_rc}, podman exit {imported.returncode}): {imported.stderr.strip()}"
            )
        say(f"podman import done in {time.monotonic() - started:.0f}s")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def ensure_base_image(*, rebuild: bool = False, progress: Callable[[str], None] | None = None) -> str:
    """Make sure the base image for the current recipe exists; return its reference.

    Reuses an existing image of the same recipe hash unless ``rebuild``. Also creates the
    shared apt archive cache directory. Raises :class:`hermes.errors.LabError`.
    """
    say = progress or (lambda _message: None)
    recipe = DEFAULT_RECIPE
    ref = image_ref(recipe)
    root = cache_root()
    env = podman_env()
    if os.geteuid() != 0:
        raise LabError("building the lab base image needs root (debootstrap, rootful podman)")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabError(f"cannot create the lab cache {root}: {exc} (set {CACHE_ENV})") from exc

    with _locked(root / "image.lock"):
        exists = subprocess.run(["podman", "image", "exists", ref], env=env, capture_output=True, check=False)
        if exists.returncode == 0 and not rebuild:
            say(f"base image {ref} is present")
            if not (apt_archive_dir(root) / "partial").is_dir():
                uid, gid = _image_apt_ids(ref, env)
                _prepare_apt_archives(root, uid, gid)
            return ref
        if exists.returncode not in (0, 1):
            raise LabError(f"podman image exists {ref}: {exists.stderr.decode().strip()}")
        if exists.returncode == 0:
            say(f"removing {ref} to rebuild it")
            _run(["podman", "rmi", "--force", ref], env=env, what="podman rmi")
        _build(ref, recipe, root, env, say)
        _remove_stale_images(ref, env, say)
    return ref


def _remove_stale_images(ref: str, env: Mapping[str, str], say: Callable[[str], None]) -> None:
    """Remove base images of older recipes that no container uses any more."""
    listed = subprocess.run(
        ["podman", "images", "--format={{.Repository}}:{{.Tag}}", IMAGE_REPOSITORY],
        env=env,
        text=True,
        capture_output=True,
        check=False,
    )
    for old in sorted(set(listed.stdout.split()) - {ref}):
        # Without --force podman refuses to remove an image a container still uses.
        removed = subprocess.run(["podman", "rmi", old], env=env, capture_output=True, check=False)
        if removed.returncode == 0:
            say(f"removed stale base image {old}")


def _image_apt_ids(ref: str, env: Mapping[str, str]) -> tuple[int, int]:
    proc = _run(
        ["podman", "run", "--rm", "--network=none", ref, "getent", "passwd", "_apt"],
        env=env,
        what="reading _apt's ids from the base image",
    )
    fields = proc.stdout.strip().split(":")
    return int(fields[2]), int(fields[3])


def main(argv: list[str] | None = None) -> int:
    """``python -m hermes.lab.image [--rebuild]``: ensure the image, print its reference.

    The scripts' way to ``hermesctl lab image``: errors are reported as hermesctl reports them.
    """
    from hermes.console import err, out, report

    args = sys.argv[1:] if argv is None else argv
    if any(a not in ("--rebuild",) for a in args):
        err.print("usage: python -m hermes.lab.image [--rebuild]", markup=False)
        return ExitCode.USAGE
    try:
        ref = ensure_base_image(rebuild="--rebuild" in args, progress=lambda message: err.print(message, markup=False))
    except HermesError as error:
        return report(error)
    out.print(ref, markup=False)
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
