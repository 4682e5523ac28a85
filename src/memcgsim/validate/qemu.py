"""Boot a set-up kernel under QEMU (TCG) with a job, and collect what the guest printed.

The guest writes its results to its second serial port (ttyS1), so the kernel's own console
messages (ttyS0: the OOM killer's reports, say) never interleave with them.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .cache import GuestKernel, SetupError
from .cpio import cpio_archive

#: the ext4 disk the scenarios' files live on, with 4 KiB blocks as production file systems
#: have (mke2fs would give an image this small 1 KiB blocks: four buffer heads of slab a page)
DISK_BYTES = 256 << 20
#: kernel command line: no kernel chatter on the result port, fast paths for emulation
CMDLINE = "console=ttyS0 panic=-1 loglevel=3 mitigations=off"


@dataclass
class Boot:
    output: str          # the result port (ttyS1)
    console: str         # the kernel console (ttyS0)
    seconds: float
    command: list
    returncode: int


def boot(kernel: GuestKernel, job: dict, memory_mib: int, cpus: int,
         timeout: float = 600.0) -> Boot:
    """Boot with the job's files ({path: text}, at least job.sh) appended to the initramfs."""
    with tempfile.TemporaryDirectory(prefix="memcgsim-qemu-") as tmp:
        t = Path(tmp)
        disk = t / "disk.img"
        with open(disk, "wb") as f:
            f.truncate(DISK_BYTES)
        r = subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-E",
                            "lazy_itable_init=0,lazy_journal_init=0", str(disk)],
                           capture_output=True, text=True)
        if r.returncode:
            raise SetupError(f"mkfs.ext4 failed: {r.stderr.strip()}")
        initrd = t / "initrd"
        extra = cpio_archive({p: (text.encode(), 0o755) for p, text in job.items()})
        initrd.write_bytes(kernel.initramfs.read_bytes() + extra)
        out, con = t / "out.txt", t / "console.txt"
        cmd = ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", f"{memory_mib}M",
               "-smp", str(cpus), "-nodefaults", "-nographic", "-no-reboot",
               "-kernel", str(kernel.vmlinux), "-initrd", str(initrd), "-append", CMDLINE,
               "-drive", f"file={disk},format=raw,if=virtio",
               "-serial", f"file:{con}", "-serial", f"file:{out}", "-monitor", "none"]
        start = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = -1
        seconds = time.monotonic() - start
        read = lambda p: p.read_text(errors="replace") if p.exists() else ""  # noqa: E731
        return Boot(read(out), read(con), seconds, cmd, rc)
