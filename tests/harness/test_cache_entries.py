"""The verified entry store of the cache folder (conformance/execution/entries.py) and the rerun of a
case that met a framework's cache artifact that failed to load (conformance/execution/cache.py),
in-process: every poisoning of an entry is a miss, one warning line, the entry removed (never what a
link points to); legitimate errors are never rerun.  End to end: tests/frameworks/test_cache_poisoning.py."""
import os
import stat

import pytest

from conformance.execution import cache, entries

KEY = entries.key({"adapter": "a:B", "export": [4, 32]})
PAYLOAD = b"model bytes " * 100


def _poison(store: entries.Entries, mode: str, outside) -> None:
    path = store.path(KEY)
    if mode in ("directory", "fifo", "symlink-out"):
        os.unlink(path)
    if mode == "truncated":
        os.truncate(path, os.path.getsize(path) // 2)
    elif mode == "empty":
        os.truncate(path, 0)
    elif mode == "garbage":
        path.write_bytes(os.urandom(os.path.getsize(path)))
    elif mode == "flipped":  # the size right, one payload byte changed
        data = bytearray(path.read_bytes())
        data[-1] ^= 1
        path.write_bytes(bytes(data))
    elif mode == "directory":
        path.mkdir()
        (path / "inside").write_text("x")
    elif mode == "fifo":
        os.mkfifo(path)
    elif mode == "symlink-out":
        path.symlink_to(outside)


MODES = ("truncated", "empty", "garbage", "flipped", "directory", "fifo", "symlink-out")


@pytest.mark.parametrize("mode", MODES)
def test_a_poisoned_entry_is_a_miss_removed_with_one_warning(tmp_path, capsys, mode):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(PAYLOAD)  # a plain model file outside the folder, which must stay
    store = entries.Entries(tmp_path / "store")
    assert store.get(KEY) is None and store.put(KEY, PAYLOAD) and store.get(KEY) == PAYLOAD
    capsys.readouterr()
    _poison(store, mode, outside)
    assert store.get(KEY) is None  # a FIFO is never opened: this returns at once
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: cache entry ") and "removed" in err, err
    assert not os.path.lexists(store.path(KEY))
    assert outside.read_bytes() == PAYLOAD
    assert store.put(KEY, PAYLOAD) and store.get(KEY) == PAYLOAD  # rebuilt
    assert stat.S_ISREG(os.lstat(store.path(KEY)).st_mode)


def test_an_entry_that_does_not_decode_or_belongs_to_another_key_is_a_miss(tmp_path, capsys):
    store = entries.Entries(tmp_path / "store")
    store.put(KEY, b"not a number")
    assert store.get(KEY, int) is None and "does not decode" in capsys.readouterr().err
    other = entries.key("other")
    store.put(other, PAYLOAD)
    os.replace(store.path(other), store.path(KEY))  # a valid entry under another key's name
    assert store.get(KEY) is None and "another key" in capsys.readouterr().err


def test_writes_leave_no_temporary_file_and_a_store_folder_that_is_a_link_is_replaced(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "store").symlink_to(elsewhere)
    store = entries.Entries(tmp_path / "store")
    assert store.put(KEY, PAYLOAD)
    assert "not a folder" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "store").is_symlink()
    assert [p.name for p in (tmp_path / "store").iterdir()] == [f"{KEY}.entry"]


class Base:
    pass


def test_an_adapters_identity_tells_a_subclass_apart():
    class Sub(Base):
        pass

    base, sub = entries.adapter_identity(Base), entries.adapter_identity(Sub)
    assert base["adapter"].endswith(":Base") and sub["adapter"].endswith(".Sub") and base != sub
    assert entries.adapter_identity(type("Typed", (Base,), {"__module__": "__nowhere__"})) is None  # no source


def _fake_cache(monkeypatch, tmp_path):
    folder = tmp_path / "inductor"
    monkeypatch.setenv(cache.ENV, str(tmp_path))
    monkeypatch.setenv("FAKE_CACHE_DIR", str(folder))
    offs = []

    class Off:
        def __enter__(self):
            offs.append("off")

        def __exit__(self, *exc):
            offs.append("on")

    monkeypatch.setattr(cache, "CACHE_LOAD_ERRORS", {"FAKE_CACHE_DIR": ((r"\bFakeLoadError\b", r"{folder}/"), Off)})
    return folder, offs


def _records(message, status="error"):
    return [{"status": "pass", "message": ""}, {"status": status, "message": message}]


def test_a_case_that_met_a_bad_artifact_is_rerun_once_without_that_cache(monkeypatch, tmp_path, capsys):
    folder, offs = _fake_cache(monkeypatch, tmp_path)
    runs = [_records(f"forward raised RuntimeError: Failed to import {folder}/ab/x.py"), _records("", "pass")]
    got = cache.rerun_without_bad_artifacts(lambda: runs.pop(0), "adapter case")
    assert got == _records("", "pass") and offs == ["off", "on"]
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("message", ["build raised Fail: [ONNXRuntimeError] type mismatch",
                                     "build raised NotImplementedError: bfloat16 on cpu",
                                     "forward raised FakeLoadError: x"])
def test_legitimate_errors_and_a_run_without_cache_are_never_rerun(monkeypatch, tmp_path, message):
    folder, offs = _fake_cache(monkeypatch, tmp_path)
    if "FakeLoadError" in message:
        monkeypatch.delenv(cache.ENV)  # --no-cache: nothing to blame
    calls = []
    got = cache.rerun_without_bad_artifacts(lambda: calls.append(1) or _records(message), "adapter case")
    assert got == _records(message) and calls == [1] and offs == []
