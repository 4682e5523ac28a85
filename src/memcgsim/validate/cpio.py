"""The newc ("070701") cpio format the kernel unpacks as an initramfs."""

from __future__ import annotations


def _entry(name: str, mode: int, data: bytes, ino: int) -> bytes:
    name_b = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0)
    head = b"070701" + b"".join(b"%08X" % f for f in fields)
    out = head + name_b
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def cpio_archive(files: dict, dirs=()) -> bytes:
    """An archive of directories (mode 0755) and files {path: (bytes, permissions)}, padded to
    512 bytes so that another archive can follow it."""
    parts = []
    ino = 1
    for d in dirs:
        parts.append(_entry(d, 0o040755, b"", ino))
        ino += 1
    for path, (data, perm) in files.items():
        parts.append(_entry(path, 0o100000 | perm, data, ino))
        ino += 1
    parts.append(_entry("TRAILER!!!", 0, b"", 0))
    blob = b"".join(parts)
    return blob + b"\0" * (-len(blob) % 512)
