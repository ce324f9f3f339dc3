"""Error types: one line naming the path, and safe to pass between processes."""

from __future__ import annotations

import pickle

from medlabel.errors import MedlabelError, ReadError, SliceSpacingError


def test_message_names_path_and_reason():
    err = ReadError("a/b.dcm", "pixel data is\n truncated")
    assert str(err) == "a/b.dcm: pixel data is truncated"
    assert MedlabelError(None, "no input").args == ("no input",)


def test_errors_survive_pickling():
    err = SliceSpacingError("/data/series", "1 missing slice")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is SliceSpacingError
    assert str(back) == str(err) and back.reason == "1 missing slice"
