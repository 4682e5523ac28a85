"""Set-up for real-kernel runs: host packages, Debian kernels, the workload program, initramfs.

Everything lands in one cache directory (MEMCGSIM_CACHE, else $XDG_CACHE_HOME/memcgsim, else
~/.cache/memcgsim), so that a run after the first starts in seconds. This is the only place that
talks to a package registry (apt), and only while setting up.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import MemcgsimError
from .cpio import cpio_archive

#: kernel series -> the Debian meta package that points to the current image of that series
SERIES = {"6.1": "linux-image-amd64", "6.12": "linux-image-6.12-amd64"}

#: host command -> Debian package that provides it
HOST_TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "busybox": "busybox-static",
    "depmod": "kmod",
    "mkfs.ext4": "e2fsprogs",
    "gcc": "gcc",
    "zstd": "zstd",
}
LIBC_A = "/usr/lib/x86_64-linux-gnu/libc.a"

#: modules the guest loads (those a kernel builds in are skipped)
GUEST_MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "zram")

#: bump when the layout of what setup builds changes
LAYOUT = 2


class SetupError(MemcgsimError):
    """A piece of the real-kernel set-up is missing and could not be installed."""


def cache_dir() -> Path:
    env = os.environ.get("MEMCGSIM_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "memcgsim"


@dataclass(frozen=True)
class GuestKernel:
    """One set-up kernel series: what QEMU boots."""

    series: str
    release: str
    vmlinux: Path
    initramfs: Path
    package: str

    @classmethod
    def load(cls, root: Path, series: str) -> GuestKernel | None:
        meta = root / f"kernel-{series}.json"
        if not meta.exists():
            return None
        d = json.loads(meta.read_text())
        if d.get("layout") != LAYOUT:
            return None
        k = cls(series, d["release"], Path(d["vmlinux"]), Path(d["initramfs"]), d["package"])
        return k if k.vmlinux.exists() and k.initramfs.exists() else None


def _run(cmd: list[str], log, **kw) -> subprocess.CompletedProcess:
    log(" ".join(cmd))
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def _is_static(path: str) -> bool:
    """An ELF executable without a program interpreter (PT_INTERP)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def _busybox() -> str | None:
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(p) and _is_static(p):
            return p
    return None


def missing_host_packages() -> list[str]:
    missing = []
    for tool, pkg in HOST_TOOLS.items():
        found = _busybox() if tool == "busybox" else shutil.which(tool) or shutil.which(
            tool, path="/usr/sbin:/sbin")
        if not found:
            missing.append(pkg)
    if not os.path.exists(LIBC_A):
        missing.append("libc6-dev")
    return missing


def ensure_host_packages(log) -> None:
    missing = missing_host_packages()
    if not missing:
        return
    hint = f"apt-get install --no-install-recommends {' '.join(missing)}"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SetupError(f"missing host packages {', '.join(missing)}; install them with: "
                         f"{hint}")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if _run(cmd, log, env=env).returncode:
        _run(["apt-get", "update", "-q"], log, env=env)
        r = _run(cmd, log, env=env)
        if r.returncode:
            raise SetupError(f"could not install {', '.join(missing)} ({r.stderr.strip()[-300:]});"
                             f" install them with: {hint}")
    still = missing_host_packages()
    if still:
        raise SetupError(f"still missing after apt-get: {', '.join(still)}")


def resolve_kernel_package(series: str, log) -> str:
    """The linux-image package the series' meta package depends on today."""
    meta = SERIES[series]
    for attempt in (0, 1):
        r = _run(["apt-cache", "depends", "--important", meta], log)
        deps = [line.split(":", 1)[1].strip() for line in r.stdout.splitlines()
                if line.strip().startswith("Depends:")]
        images = [d for d in deps if d.startswith("linux-image-")]
        if images:
            return images[0]
        if attempt == 0 and os.geteuid() == 0:
            _run(["apt-get", "update", "-q"], log)
    raise SetupError(f"apt knows no package {meta} (the Debian {series} kernel); is a Debian "
                     f"bookworm mirror with bookworm-backports configured?")


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The uncompressed ELF kernel inside a bzImage: find a compressed stream by its magic and
    decompress it (as the kernel's scripts/extract-vmlinux does)."""
    magics = ((b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\x1f\x8b\x08", "gzip"))
    for magic, kind in magics:
        pos = bzimage.find(magic)
        while pos >= 0:
            data = _decompress(bzimage[pos:], kind)
            if data and data[:4] == b"\x7fELF":
                return data
            pos = bzimage.find(magic, pos + 1)
    raise SetupError("no xz, zstd or gzip stream holding an ELF kernel in the bzImage")


def _decompress(blob: bytes, kind: str) -> bytes | None:
    try:
        if kind == "xz":
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(blob)
        if kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(blob)
        r = subprocess.run(["zstd", "-dcq"], input=blob, capture_output=True)
        return r.stdout
    except (lzma.LZMAError, zlib.error, OSError, EOFError):
        return None


def _module_closure(moddir: Path, wanted) -> list[str]:
    """Paths (relative to moddir) of the wanted modules and everything they depend on."""
    deps = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()

    def name(p):
        return os.path.basename(p).split(".ko")[0].replace("-", "_")

    by_name = {name(p): p for p in deps}
    out: list[str] = []
    for w in wanted:
        p = by_name.get(w)
        if p is None:
            continue
        for d in reversed(deps[p]):
            if d not in out:
                out.append(d)
        if p not in out:
            out.append(p)
    return out


def workload_source() -> str:
    return resources.files(__package__).joinpath("workload.c").read_text()


def build_workload(root: Path, log) -> Path:
    src = workload_source()
    tag = hashlib.sha256(src.encode()).hexdigest()[:12]
    out = root / f"wl-{tag}"
    if out.exists():
        return out
    with tempfile.TemporaryDirectory() as tmp:
        c = Path(tmp) / "workload.c"
        c.write_text(src)
        r = _run(["gcc", "-static", "-O2", "-Wall", "-o", str(out), str(c)], log)
        if r.returncode:
            raise SetupError(f"gcc could not build the workload program:\n{r.stderr}")
    return out


INIT = """#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
$B mount -t tmpfs run /run
for m in {modules}; do $B modprobe $m || echo "@@E modprobe $m failed" > /dev/ttyS1; done
. /job.sh
$B sync
$B reboot -f
"""


def fetch_kernel(series: str, root: Path, log) -> Path:
    """Download the series' current image package and keep vmlinux, its config and the modules
    the guest loads (decompressed, with their modules.dep) under kernels/PACKAGE/."""
    pkg = resolve_kernel_package(series, log)
    kdir = root / "kernels" / pkg
    done = kdir / "kernel.json"
    if done.exists() and json.loads(done.read_text()).get("layout") == LAYOUT:
        return kdir
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        r = _run(["apt-get", "download", pkg], log, cwd=tmp)
        debs = list(Path(tmp).glob("*.deb"))
        if r.returncode or not debs:
            raise SetupError(f"apt-get download {pkg} failed: {r.stderr.strip()[-300:]}")
        x = Path(tmp) / "x"
        if _run(["dpkg", "-x", str(debs[0]), str(x)], log).returncode:
            raise SetupError(f"dpkg -x {debs[0].name} failed")
        vmlinuz = sorted((x / "boot").glob("vmlinuz-*"))
        if not vmlinuz:
            raise SetupError(f"{pkg} holds no /boot/vmlinuz-*")
        release = vmlinuz[0].name[len("vmlinuz-"):]
        if not release.startswith(series + "."):
            raise SetupError(f"{SERIES[series]} points to {release}, not a {series} kernel")
        src_root = x if (x / "lib" / "modules").exists() else x / "usr"
        moddir = src_root / "lib" / "modules" / release
        r = _run(["depmod", "-b", str(src_root), release], log)
        if r.returncode:
            raise SetupError(f"depmod failed: {r.stderr}")
        mods = _module_closure(moddir, GUEST_MODULES)
        small = kdir / "root"
        if small.exists():
            shutil.rmtree(small)
        sdir = small / "lib" / "modules" / release
        for rel in mods:
            data = (moddir / rel).read_bytes()
            if rel.endswith(".xz"):
                data = lzma.decompress(data)
            elif rel.endswith(".zst"):
                data = _decompress(data, "zstd")
            p = sdir / (rel.split(".ko")[0] + ".ko")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        for extra in ("modules.builtin", "modules.order", "modules.builtin.modinfo"):
            if (moddir / extra).exists():
                shutil.copy(moddir / extra, sdir / extra)
        if _run(["depmod", "-b", str(small), release], log).returncode:
            raise SetupError("depmod of the guest's modules failed")
        (kdir / "vmlinux").write_bytes(extract_vmlinux(vmlinuz[0].read_bytes()))
        shutil.copy(x / "boot" / f"config-{release}", kdir / "config")
        loaded = [m for m in GUEST_MODULES if any(
            os.path.basename(r).split(".ko")[0].replace("-", "_") == m for r in mods)]
        (kdir / "kernel.json").write_text(json.dumps(
            {"layout": LAYOUT, "release": release, "package": pkg, "modules": loaded}, indent=1))
    return kdir


def build_initramfs(kdir: Path, wl: Path) -> Path:
    """busybox, /init, the workload program and the modules, as one newc archive."""
    meta = json.loads((kdir / "kernel.json").read_text())
    files: dict[str, tuple] = {
        "bin/busybox": (Path(_busybox()).read_bytes(), 0o755),
        "bin/wl": (wl.read_bytes(), 0o755),
        "init": (INIT.format(modules=" ".join(meta["modules"])).encode(), 0o755),
    }
    dirs = ["bin", "dev", "proc", "sys", "run", "tmp", "mnt"]
    small = kdir / "root"
    for p in sorted(small.rglob("*")):
        rel = str(p.relative_to(small))
        if p.is_dir():
            dirs.append(rel)
        else:
            files[rel] = (p.read_bytes(), 0o644)
    out = kdir / f"initramfs-{wl.name}.cpio"
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(cpio_archive(files, dirs))
    tmp.replace(out)
    return out


def setup(series_list, log=lambda s: None, root: Path | None = None) -> dict:
    """Make sure every named kernel series is ready to boot; returns {series: GuestKernel}."""
    root = root or cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    ensure_host_packages(log)
    wl = build_workload(root, log)
    out = {}
    for series in series_list:
        k = GuestKernel.load(root, series)
        if k is None or not k.initramfs.name.endswith(f"{wl.name}.cpio"):
            kdir = fetch_kernel(series, root, log)
            meta = json.loads((kdir / "kernel.json").read_text())
            k = GuestKernel(series, meta["release"], kdir / "vmlinux",
                            build_initramfs(kdir, wl), meta["package"])
            (root / f"kernel-{series}.json").write_text(json.dumps({
                "layout": LAYOUT, "release": k.release, "vmlinux": str(k.vmlinux),
                "initramfs": str(k.initramfs), "package": k.package}, indent=1))
        out[series] = k
    return out


def ready(series: str, root: Path | None = None) -> GuestKernel | None:
    """The cached kernel of a series when set-up has been done, without building anything."""
    root = root or cache_dir()
    if missing_host_packages():
        return None
    return GuestKernel.load(root, series)
