"""Overlays without the index: requirements, version order, cache keys, pruning (docs/versions.md).
What needs PyPI (building, running with another release) is in tests/frameworks/test_versions.py."""
import json
import os
import time

import pytest
from packaging.version import Version

from conformance.errors import UsageError
from conformance.execution import overlays
from conformance.execution.adapter_refs import AdapterRef, share_key, with_overlay, worker_env
from conformance.execution.overlays import Requirement


def test_requirements_parse_and_vary_together():
    assert Requirement.parse("Keras==3.9.0") == Requirement("keras", "3.9.0")
    assert Requirement.parse("keras==nightly") == Requirement("keras-nightly", "nightly")
    assert Requirement.parse("tensorflow==nightly") == Requirement("tf-nightly", "nightly")
    assert Requirement.parse("tensorflow==2.16.1") == Requirement("tensorflow-cpu", "2.16.1")
    assert str(Requirement.parse("jax==0.6.0")) == "jax==0.6.0"
    assert overlays.expand((Requirement("jax", "0.6.0"),)) == (Requirement("jax", "0.6.0"), Requirement("jaxlib", "0.6.0"))
    assert overlays.expand((Requirement("jax", "0.6.0"), Requirement("jaxlib", "0.6.1")))[1].version == "0.6.1"


@pytest.mark.parametrize("text, says", [
    ("keras>=3", "give PKG==VERSION"), ("keras", "give PKG==VERSION"), ("keras==3.x", "not a version"),
    ("jax==nightly", "nightlies are on PyPI for"), ("", "give PKG==VERSION"),
])
def test_bad_requirements_are_one_line(text, says):
    with pytest.raises(UsageError, match=says) as e:
        Requirement.parse(text)
    assert "\n" not in str(e.value)


def test_any_distribution_can_vary_from_an_index_that_has_it():
    # A user's kernel package, from its own index: refused only when the overlay is built and the
    # index lacks it (tests/frameworks/test_versions.py).
    assert Requirement.parse("my_kernels==0.2") == Requirement("my-kernels", "0.2")


def test_torch_needs_another_index_and_one_version_per_package():
    with pytest.raises(UsageError, match="--index-url"):
        overlays.check((Requirement("torch", "2.5.0"),))
    assert overlays.check((Requirement("torch", "2.5.0"),), ("--index-url", "https://download.pytorch.org/whl/cpu"))
    assert overlays.check((Requirement("torch", "2.5.0"),), ("--find-links=/wheels",))
    with pytest.raises(UsageError, match="one version per package"):
        overlays.check((Requirement("keras", "3.9.0"), Requirement("keras", "3.10.0")))


KERAS = ["3.15.1", "3.9.0", "3.10.0", "2.2.0", "3.0.0rc1", "3.0.0", "3.0.0.dev1", "3.0.0.post1", "3.0.0a2", "3.0.0b1",
         "3.1", "3.1.0.1", "1!0.1", "3.0.0+local.7", "3.16.0.dev2026102704", "3.16.0.dev2026010100", "0.2.0"]


def test_fallback_version_order_is_pep440():
    assert sorted(KERAS, key=overlays.fallback_version_key) == sorted(KERAS, key=Version)
    assert sorted(KERAS, key=overlays.version_key) == sorted(KERAS, key=Version)


def test_pip_index_arguments():
    args = ("--index-url", "U", "--no-deps", "--extra-index-url=E", "--pre", "--no-index", "-f", "F", "--retries", "1")
    assert overlays._index_args(args) == ["--index-url", "U", "--extra-index-url=E", "--no-index", "-f", "F", "--retries", "1"]


def test_sizes():
    assert overlays.parse_size("500M") == 500 * 2**20
    assert overlays.parse_size("2G") == 2 * 2**30 and overlays.parse_size("1.5k") == 1536
    assert overlays.parse_size("0") == 0 and overlays.parse_size("123") == 123
    with pytest.raises(ValueError):
        overlays.parse_size("5x")


def test_the_overlay_comes_first_on_the_workers_path(tmp_path):
    a = AdapterRef("numpy-reference", "numpy-reference", {}, None, "numpy", True)
    (b,) = with_overlay([a], tmp_path)
    path = worker_env(b)["PYTHONPATH"].split(os.pathsep)
    assert path[0] == str(tmp_path) and path[1] == os.getcwd()
    assert share_key(a) != share_key(b)  # another overlay: another worker
    assert with_overlay([a], None) == [a]


def test_the_key_follows_packages_pip_arguments_and_interpreter():
    base = overlays.base()
    k = overlays.key((Requirement("keras", "3.9.0"),), (), base)
    assert k == overlays.key((Requirement("keras", "3.9.0"),), (), overlays.base())
    assert k != overlays.key((Requirement("keras", "3.10.0"),), (), base)
    assert k != overlays.key((Requirement("keras", "3.9.0"),), ("--pre",), base)
    other = overlays.Base("/other/python", base.version, base.path, base.markers, base.dists)
    assert k != overlays.key((Requirement("keras", "3.9.0"),), (), other)
    assert base.dists["numpy"]  # the base's distributions, from their .dist-info names


def _fake(top, name, size, used):
    folder = top / name
    folder.mkdir(parents=True)
    (folder / "blob").write_bytes(b"x" * size)
    (folder / overlays.MARKER).write_text(json.dumps({"key": name, "installed": {}, "requirements": []}))
    os.utime(folder / overlays.MARKER, (used, used))
    return folder


def test_prune_least_recently_used_first_skipping_what_a_run_holds(tmp_path):
    top = overlays.root(tmp_path)
    now = time.time()
    old, mid, new = (_fake(top, n, 1000, now - age) for n, age in (("a" * 16, 300), ("b" * 16, 200), ("c" * 16, 100)))
    stale = top / f"{overlays.TMP_PREFIX}{'d' * 16}-xyz"  # an interrupted build's leftover
    stale.mkdir()
    (top / f"{'e' * 16}.lock").touch()  # the lock of a build that failed
    with overlays.hold(old):
        removed = overlays.prune(tmp_path, 2500)
    assert removed == [stale, mid]  # the leftover, then the least recently used that no run holds
    assert old.exists() and new.exists() and not (top / f"{'e' * 16}.lock").exists()
    assert overlays.prune(tmp_path, None) == [old, new]
    assert sorted(p.name for p in top.iterdir()) == []


def test_a_folder_without_its_marker_is_no_overlay(tmp_path):
    folder = _fake(overlays.root(tmp_path), "f" * 16, 10, time.time())
    assert overlays.read_marker(folder) is not None
    (folder / overlays.MARKER).write_text(json.dumps({"key": "f" * 16, "installed": {"keras": "3.9.0"}}))
    assert overlays.read_marker(folder) is None  # a distribution it lists is missing
    with pytest.raises(UsageError, match="was removed"):
        with overlays.hold(folder):
            pass

