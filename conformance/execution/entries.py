"""A small verified store of the entries the project keeps in its cache folder (--cache-dir):
key -> bytes, one file per entry, in a folder of its own (e.g. torch-onnx's exported models).

- The key is a digest of everything that decides the entry (`key`): the adapter's identity
  (`adapter_identity`: its reference and a digest of its source), the versions and the
  parameters the entry is built from.  A subclass or an edited adapter never shares an entry.
- An entry is written whole and durably (`put`): a temporary file in the same folder, fsync,
  rename, fsync of the folder; a header line carries the key, the payload's size and its sha256.
- An entry is verified on every read (`get`): lstat first, so anything that is not a regular file
  of the folder (a directory, a FIFO, a symbolic link, pointing in or out) is refused without
  being opened; then the header, the size, the checksum and the caller's `decode`.  An entry that
  fails is removed, reported with one warning line on stderr (a worker's stderr is its task's log,
  OUT/logs/) and is a miss: the caller rebuilds it and puts it back.

Nothing here names a framework.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Callable

MAGIC = b"rmsnorm-conformance-entry/1"
SUFFIX = ".entry"
MAX_ENTRY_BYTES = 1 << 30  # nothing the project keeps comes near; a bigger file is not one of its entries
_HEADER_MAX = 256
_CONTRACT_MODULES = ("conformance.adapter", "builtins")  # the base class: the same for every adapter


def key(parts) -> str:
    """The entry's key: a sha256 of its parts (JSON; other values by repr)."""
    text = json.dumps(parts, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _module_source(name: str) -> str | None:
    module = sys.modules.get(name)
    if module is None:
        return None
    try:
        return inspect.getsource(module)
    except (OSError, TypeError):
        return None


def adapter_identity(cls: type, *uses) -> dict | None:
    """What an entry built by this adapter class depends on of its code: its reference
    (module:qualname) and a sha256 of the source of the modules defining it, the classes of its
    MRO (but the contract's Adapter) and the functions `uses` names that it builds the entry
    with.  None where a source cannot be read (a class defined in an interactive session): such
    an adapter's entries are not kept."""
    modules = {c.__module__ for c in cls.__mro__ if c.__module__ not in _CONTRACT_MODULES}
    modules |= {getattr(fn, "__module__", None) for fn in uses} - {None}
    digest = hashlib.sha256()
    for name in sorted(modules):
        source = _module_source(name)
        if source is None:
            return None
        digest.update(name.encode() + b"\0" + source.encode() + b"\0")
    return {"adapter": f"{cls.__module__}:{cls.__qualname__}", "source": digest.hexdigest()}


def warn(message: str) -> None:
    """One line on stderr (a worker's stderr is its task's log)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


class Bad(Exception):
    """Why an entry is refused."""


class Entries:
    """The entries of one folder.  `get(key, decode)` -> the decoded entry or None (a miss, or a
    failing entry removed with one warning); `put(key, data)` keeps it (a failure to write is one
    warning, never an error of the case)."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self._ready = False

    def path(self, key: str) -> Path:
        if not key or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"an entry key is a hex digest, not {key!r}")
        return self.folder / f"{key}{SUFFIX}"

    def _ensure_folder(self) -> bool:
        """The folder, a real directory (anything else in its place is removed, with a warning)."""
        if self._ready:
            return True
        try:
            try:
                st = os.lstat(self.folder)
            except FileNotFoundError:
                st = None
            if st is not None and not stat.S_ISDIR(st.st_mode):
                warn(f"cache folder {self.folder} is {_kind(st.st_mode)}, not a folder; removed, made anew")
                os.unlink(self.folder)
                st = None
            if st is None:
                self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            warn(f"cache folder {self.folder} cannot be used ({exc.strerror or exc}); its entries are not kept")
            return False
        self._ready = True
        return True

    def get(self, key: str, decode: Callable[[bytes], object] = bytes):
        path = self.path(key)
        if not self._ensure_folder():
            return None
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return self._refuse(path, None, f"cannot be read ({exc.strerror or exc})")
        try:
            payload = self._read(path, key, st)
            return decode(payload)
        except Bad as why:
            return self._refuse(path, st, str(why))
        except Exception as exc:  # noqa: BLE001: whatever the decoder raises, the entry is bad
            return self._refuse(path, st, f"does not decode ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})")

    def _read(self, path: Path, key: str, st: os.stat_result) -> bytes:
        if not stat.S_ISREG(st.st_mode):
            raise Bad(f"is {_kind(st.st_mode)}, not a regular file")
        if st.st_size > MAX_ENTRY_BYTES:
            raise Bad(f"is {st.st_size} bytes, more than any entry")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise Bad(f"cannot be opened ({exc.strerror or exc})") from None
        try:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(now.st_mode):
                raise Bad("changed while it was opened")
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read(MAX_ENTRY_BYTES + 1)
        except OSError as exc:
            raise Bad(f"cannot be read ({exc.strerror or exc})") from None
        finally:
            os.close(fd)
        if not data:
            raise Bad("is empty")
        line, newline, payload = data.partition(b"\n")
        if not newline and MAGIC.startswith(data[:len(MAGIC)]):
            raise Bad(f"is truncated ({len(data)} bytes, inside its header)")
        fields = line.split(b" ") if newline and len(line) <= _HEADER_MAX else []
        if len(fields) != 4 or fields[0] != MAGIC:
            raise Bad("has no entry header (not written by this suite, or overwritten)")
        _, stored_key, size, digest = fields
        if stored_key.decode(errors="replace") != key:
            raise Bad("holds the entry of another key")
        if not size.isdigit() or int(size) != len(payload):
            raise Bad(f"is truncated or padded ({len(payload)} bytes of payload, the header says {size.decode(errors='replace')})")
        if hashlib.sha256(payload).hexdigest().encode() != digest:
            raise Bad("fails its sha256 checksum")
        return payload

    def _refuse(self, path: Path, st, why: str) -> None:
        """Remove the failing entry (never what a link points to) and say so once."""
        try:
            if st is not None and stat.S_ISDIR(st.st_mode):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            done = "removed; rebuilt"
        except FileNotFoundError:
            done = "gone; rebuilt"
        except OSError as exc:
            done = f"could not be removed ({exc.strerror or exc}); rebuilt, not kept"
        warn(f"cache entry {path} {why}: {done}")
        return None

    def put(self, key: str, data: bytes) -> bool:
        """Keep the entry: written whole to a temporary file of the folder, fsynced, renamed, the
        folder fsynced.  False, with one warning, where it could not be kept."""
        path = self.path(key)
        if not self._ensure_folder():
            return False
        header = b" ".join((MAGIC, key.encode(), str(len(data)).encode(), hashlib.sha256(data).hexdigest().encode()))
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{key[:16]}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(header + b"\n")
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            tmp = None
            _fsync_folder(self.folder)
            return True
        except OSError as exc:
            warn(f"cache entry {path} could not be kept ({exc.strerror or exc})")
            return False
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a regular file" if stat.S_ISREG(mode) else "not a file"
