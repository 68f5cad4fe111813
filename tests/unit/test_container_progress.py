"""The progress file a container may write: both forms, and nothing in it trusted beyond its bounds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from processes.container.progress import MESSAGE_LIMIT, PROGRESS_LIMIT, Progress, parse_progress, read_progress


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("40 reading the grid\n", Progress(40, "reading the grid")),
        ("7", Progress(7, "running")),
        ('{"percent": 55, "message": "writing"}', Progress(55, "writing")),
        ('{"message": "no number yet"}', Progress(None, "no number yet")),
        ('{"percent": 12}', Progress(12, "running")),
        ("250 over the top", Progress(100, "over the top")),  # kept within 0..100
        ("-3 below", Progress(0, "below")),
        ('{"percent": 900}', Progress(100, "running")),
        ("12 a\x1b[31m red\x00 word\nand\ta line", Progress(12, "a[31m red word and a line")),
        ('{"percent": 1, "message": "raw \x07bell"}', Progress(1, "raw bell")),
    ],
)
def test_both_forms_are_read_within_bounds(text, expected):
    assert parse_progress(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "half done",
        "4.5 a fraction",
        "1e3 exponent",
        "99999999999999999999 too long a number",
        '{"percent": 4.5}',
        '{"percent": true}',
        '{"percent": "40"}',
        '{"percent": 40, "message": ["not", "text"]}',
        '{"percent": 4',  # half written
        "[40]",
        "null",
    ],
)
def test_anything_else_is_ignored(text):
    assert parse_progress(text) is None


def test_a_long_message_is_cut():
    assert parse_progress("50 " + "x" * 5000) == Progress(50, "x" * MESSAGE_LIMIT)


def test_the_file_is_read_only_when_it_is_a_small_regular_file(tmp_path: Path):
    path = tmp_path / "status"
    assert read_progress(path) is None  # none written yet
    path.write_text("30 working")
    assert read_progress(path) == Progress(30, "working")
    path.write_text("30 " + "x" * PROGRESS_LIMIT)
    assert read_progress(path) is None  # larger than any progress line


def test_a_symbolic_link_out_of_the_mount_is_not_followed(tmp_path: Path):
    secret = tmp_path / "secret"
    secret.write_text("42 the host's secret")
    link = tmp_path / "status"
    link.symlink_to(secret)
    assert read_progress(link) is None


def test_a_fifo_does_not_block_the_reader(tmp_path: Path):
    fifo = tmp_path / "status"
    os.mkfifo(fifo)
    assert read_progress(fifo) is None  # returns at once: no writer is waited for
    directory = tmp_path / "dir"
    directory.mkdir()
    assert read_progress(directory) is None
