"""nervseg.files: a write that fails leaves the old file whole and no temp file behind."""

from pathlib import Path

import pytest

from nervseg.files import write_atomic, write_text_atomic


def test_write_text_atomic_replaces_and_creates_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "state.json"
    write_text_atomic(target, "one")
    write_text_atomic(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_failed_write_keeps_old_content(tmp_path: Path) -> None:
    target = tmp_path / "rows.csv"
    target.write_text("old")

    def broken(f) -> None:
        f.write("half a row")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_atomic(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["rows.csv"]


def test_binary_write(tmp_path: Path) -> None:
    target = tmp_path / "clip.bin"
    write_atomic(target, lambda f: f.write(b"\x00\xff"), binary=True)
    assert target.read_bytes() == b"\x00\xff"
