"""`conformance repro` and `conformance show` fail cleanly: an adapter that prints on stdout,
hangs or gives a broken snippet; a `show --out` that exists, is special or cannot be written;
printed commands a shell can paste.  Planted adapters: tests/planted/printing.py."""
import os
import resource
import shlex
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.harness import processes

NORMAL = "f32/4x32/ax-1/eps1e-06/normal/rand/s0"
PRINTING = "tests.planted.printing:"


def _reference_hash() -> str:
    """The numpy reference's own output hash on NORMAL, computed here."""
    from conformance.adapters.numpy_reference import NumpyReference
    from conformance.cases.case import layer_spec, materialize, parse_case
    from conformance.commands.repro import output_hash

    case = parse_case(NORMAL)
    arrays = materialize(case)
    adapter = NumpyReference()
    return output_hash(adapter.call(adapter.build(layer_spec(case, arrays)), arrays.x))[1]


def _run_script(script, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("adapter", ["PrintsNoNewline", "PrintsAtExit", "PrintsJson"])
def test_repro_reads_its_result_past_whatever_the_adapter_prints(tmp_path, adapter):
    out = tmp_path / "r"
    run = processes.cli(tmp_path, "repro", NORMAL, "--adapter", PRINTING + adapter, "--out", str(out))
    assert run.proc.returncode == 0, (run.stdout, run.stderr)
    run.assert_clean()
    expected = _reference_hash()
    assert f"sha256 {expected}" in run.stdout and "planted" not in run.stdout, run.stdout
    assert "goodbye" not in run.stdout and "calling..." not in run.stdout
    script = _run_script(out / "repro.py", tmp_path)
    assert script.returncode == 0, script.stderr
    assert f"output sha256: {expected}" in script.stdout


@pytest.mark.parametrize("adapter", ["HangsInCall", "HangsInBuild"])
def test_a_hanging_adapter_is_one_line_exit_1_and_nothing_left_running(tmp_path, adapter):
    run = processes.cli(tmp_path, "repro", NORMAL, "--adapter", PRINTING + adapter, "--out", str(tmp_path / "r"),
                        "--timeout", "2", timeout=60)
    assert run.proc.returncode == 1, (run.stdout, run.stderr)
    assert run.elapsed < 30, run.elapsed
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1 and "within 2s" in lines[0] and "--timeout" in lines[0], run.stdout
    run.assert_clean()  # the helper the adapter started is killed with it


def test_repro_timeout_is_checked_like_runs(cli, tmp_path):
    p = cli("repro", NORMAL, "--adapter", "numpy-reference", "--out", str(tmp_path / "r"), "--timeout", "0")
    assert p.returncode == 2 and "--timeout" in p.stderr and "must be a finite number" in p.stderr, p.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("adapter, says", [("SnippetRaises", "snippet() raised RuntimeError: planted snippet failure"),
                                           ("SnippetGarbage", "snippet() gave source that does not compile")])
def test_a_broken_snippet_still_gives_the_generic_script_and_says_why(tmp_path, adapter, says):
    out = tmp_path / "r"
    run = processes.cli(tmp_path, "repro", NORMAL, "--adapter", PRINTING + adapter, "--out", str(out))
    assert run.proc.returncode == 0, (run.stdout, run.stderr)
    run.assert_clean()
    note = [line for line in run.stdout.splitlines() if "snippet()" in line]
    assert len(note) == 1 and says in note[0] and "second line" not in run.stdout, run.stdout
    assert "import_adapter" in (out / "repro.py").read_text()
    script = _run_script(out / "repro.py", tmp_path)
    assert script.returncode == 0, script.stderr
    assert f"output sha256: {_reference_hash()}" in script.stdout


def test_repro_prints_a_command_a_shell_can_paste(cli, tmp_path):
    out = tmp_path / "it's a folder" / "r 1"
    p = cli("repro", NORMAL, "--adapter", "numpy-reference", "--out", str(out))
    assert p.returncode == 0, p.stderr
    (line,) = [x for x in p.stdout.splitlines() if x.startswith("run it: ")]
    argv = shlex.split(line.removeprefix("run it: "))
    assert argv == ["python", str(out / "repro.py")]
    script = _run_script(argv[1], tmp_path)
    assert script.returncode == 0, script.stderr


# -- show --------------------------------------------------------------------------------------

def test_show_writes_the_path_it_prints_and_refuses_what_exists(cli, tmp_path):
    target = tmp_path / "c.npz"
    p = cli("show", NORMAL, "--out", str(target))
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1].startswith(f"wrote {target} ")
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]
    before = target.read_bytes()
    p = cli("show", NORMAL, "--out", str(target))
    assert p.returncode == 2 and "already exists" in p.stderr and "--overwrite" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and p.stdout == ""
    assert target.read_bytes() == before
    p = cli("show", NORMAL, "--out", str(target), "--overwrite")
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]


def test_show_takes_only_a_path_ending_in_npz(cli, tmp_path):
    for given in (tmp_path / "c", tmp_path / "c.npy", "/dev/full"):
        p = cli("show", NORMAL, "--out", str(given))
        assert p.returncode == 2 and ".npz" in p.stderr, (given, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == [] and not os.path.exists("/dev/full.npz")


def test_show_never_writes_through_a_symlink(cli, tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "c.npz"
    link.symlink_to(target)
    p = cli("show", NORMAL, "--out", str(link))
    assert p.returncode == 2 and "symbolic link" in p.stderr
    assert target.read_text() == "keep me" and link.is_symlink()
    p = cli("show", NORMAL, "--out", str(link), "--overwrite")
    assert p.returncode == 0, p.stderr
    assert target.read_text() == "keep me" and not link.is_symlink() and link.is_file()


def test_show_refuses_a_fifo_or_a_folder_even_with_overwrite(cli, tmp_path):
    fifo = tmp_path / "f.npz"
    os.mkfifo(fifo)
    (tmp_path / "d.npz").mkdir()
    for path in (fifo, tmp_path / "d.npz"):
        for extra in ((), ("--overwrite",)):
            p = cli("show", NORMAL, "--out", str(path), *extra, timeout=60)
            assert p.returncode == 2 and "not a regular file" in p.stderr, p.stderr
    assert sorted(os.listdir(tmp_path)) == ["d.npz", "f.npz"]


def test_a_write_error_of_show_is_one_line_and_leaves_nothing(tmp_path):
    missing = tmp_path / "missing" / "c.npz"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "conformance.cli", "show", NORMAL, "--out", str(missing)], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "cannot write" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not missing.parent.exists()

    def small_files():  # a full disk: a write past 1000 bytes fails (Python ignores SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))

    p = subprocess.run([sys.executable, "-m", "conformance.cli", "show", NORMAL, "--out", str(tmp_path / "c.npz")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, preexec_fn=small_files)
    assert p.returncode == 2 and "cannot write" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and os.listdir(tmp_path) == []


# -- run --cache-dir ----------------------------------------------------------------------------

def test_an_empty_cache_dir_is_refused(cli, tmp_path):
    p = cli("run", "--suite", "smoke", "--adapters", "numpy-reference", "--cache-dir", "", "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "--cache-dir" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "o").exists()
