"""An unusable timings.json (the previous run's seconds per case, which only order the tasks)
is ignored with one warning line, never read past a size limit, and leaves nothing behind."""
import os

import pytest

from conformance.execution import schedule


def _poison(folder, mode):
    path = folder / schedule.FILE
    if mode == "huge-integer":
        path.write_text('{"torch": ' + "9" * 401 + "}")
    elif mode == "nan":
        path.write_text('{"torch": NaN}')
    elif mode == "negative":
        path.write_text('{"torch": -1}')
    elif mode == "not-an-object":
        path.write_text("[1, 2]")
    elif mode == "garbage":
        path.write_bytes(b"\xff\x00{")
    elif mode == "too-large":
        path.write_text('{"torch": 1.0' + " " * schedule.MAX_BYTES + "}")
    elif mode == "fifo":
        os.mkfifo(path)
    elif mode == "dev-zero":
        path.symlink_to("/dev/zero")
    elif mode == "folder":
        path.mkdir()
    return path


MODES = ("huge-integer", "nan", "negative", "not-an-object", "garbage", "too-large", "fifo", "dev-zero", "folder")


@pytest.mark.parametrize("mode", MODES)
def test_unusable_timings_are_ignored_with_one_warning(tmp_path, mode):
    _poison(tmp_path, mode)
    warnings = []
    assert schedule.load(tmp_path, warn=warnings.append) == {}
    assert len(warnings) == 1 and warnings[0].startswith("warning: ignoring ") and "\n" not in warnings[0]


@pytest.mark.parametrize("mode", MODES)
def test_saving_over_unusable_timings_leaves_nothing_behind(tmp_path, mode):
    _poison(tmp_path, mode)
    schedule.save(tmp_path, {"torch": 2.0}, {"torch": 4})
    assert [p.name for p in tmp_path.iterdir()] == [schedule.FILE]
    if mode != "folder":  # a folder in its place cannot be replaced: the next run warns again
        assert schedule.load(tmp_path, warn=pytest.fail) == {"torch": 0.5}


def test_good_timings_round_trip(tmp_path):
    schedule.save(tmp_path, {"a": 3.0, "b": 1.0}, {"a": 3, "b": 4})
    schedule.save(tmp_path, {"b": 2.0}, {"b": 1})
    assert schedule.load(tmp_path, warn=pytest.fail) == {"a": 1.0, "b": 2.0}
