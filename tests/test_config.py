"""``touchpoint serve``'s settings, through the real command: a bad config file, option or data
folder exits 2 with one line on stderr naming the file and the key (or the folder), no traceback,
before anything starts; a good file starts the service."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SERVE = [sys.executable, "-m", "engine", "serve", "cart_abandonment"]


def serve(*options: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SERVE, "--port", "0", *options], capture_output=True, text=True,
                          timeout=60, env=None if env is None else {**os.environ, **env})


def refusal(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused start printed on stderr."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    return line


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "serve.toml"


@pytest.mark.parametrize("text, message", [
    ('write_keys = "SECRET"',
     'write_keys: Expected `array`, got `str`; write an array of non-empty strings such as ["KEY"]'),
    ('write_keys = ["KEY", ""]',
     'write_keys[1]: Expected `str` of length >= 1; write an array of non-empty strings such as ["KEY"]'),
    ('port = "abc"', "port: Expected `int`, got `str`; write an integer from 0 to 65535 such as 8800"),
    ("port = 70000", "port: Expected `int` <= 65535; write an integer from 0 to 65535 such as 8800"),
    ("port = -1", "port: Expected `int` >= 0; write an integer from 0 to 65535 such as 8800"),
    ("snapshot_every = -5", "snapshot_every: Expected `float` >= 1.0; write a number >= 1 such as 300"),
    ("snapshot_every = 0", "snapshot_every: Expected `float` >= 1.0; write a number >= 1 such as 300"),
    ('fsync = "sometimes"', """fsync: Invalid enum value 'sometimes'; write "batch" or "none\""""),
    ("admin_token = 3", 'admin_token: Expected `str`, got `int`; write a non-empty string such as "TOKEN"'),
    ('admin_token = ""',
     'admin_token: Expected `str` of length >= 1; write a non-empty string such as "TOKEN"'),
    ("host = 1", "host: Expected `str`, got `int`; write a string"),
    ('colour = "blue"\nshade = 2', "unknown keys ['colour', 'shade']; expected ['admin_token', "
     "'agent_token', 'archive', 'channels', 'data', 'fsync', 'host', 'outbox', 'port', 'snapshot_every', "
     "'write_keys']"),
    ("outbox = 3", "outbox: Expected `object`, got `int`; write a table"),
    ("[outbox]\nbase_delay = -1", "outbox.base_delay: Expected `float` >= 0.0; write a number >= 0"),
])
def test_a_bad_key_of_the_config_file_exits_2_naming_the_file_and_the_key(tmp_path, config, text,
                                                                          message):
    config.write_text(text + "\n")
    done = serve("--config", str(config), "--data", str(tmp_path / "state"))
    assert refusal(done) == f"config {config}: {message}"
    assert not (tmp_path / "state").exists()  # refused before anything started


def test_a_bad_key_is_refused_even_when_an_option_overrides_it(tmp_path, config):
    config.write_text('write_keys = "SECRET"\n')
    done = serve("--config", str(config), "--data", str(tmp_path / "state"), "--write-key", "KEY")
    assert refusal(done).startswith(f"config {config}: write_keys: Expected `array`, got `str`")


@pytest.mark.parametrize("text, problem", [
    ("port = ", r"Invalid value \(at end of document\)"),
    (b"\xff\xfe", "'utf-8' codec can't decode byte 0xff"),
    (None, r"\[Errno 2\] No such file or directory"),
])
def test_an_unreadable_or_malformed_config_file_exits_2_in_one_line(tmp_path, config, text, problem):
    if isinstance(text, str):
        config.write_text(text)
    elif text is not None:
        config.write_bytes(text)
    done = serve("--config", str(config), "--data", str(tmp_path / "state"))
    assert re.match(f"config {re.escape(str(config))}: {problem}", refusal(done))


@pytest.mark.parametrize("where", ["option", "file"])
@pytest.mark.parametrize("under", ["a/file/state", "a/file"])
def test_a_data_folder_that_cannot_be_written_exits_2_naming_it(tmp_path, config, where, under):
    # as root, permission bits do not stop a write: a regular file in the way does
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "file").write_text("not a folder\n")
    data = tmp_path / under
    config.write_text('write_keys = ["KEY"]\n' + (f'data = "{data.as_posix()}"\n' if where == "file" else ""))
    done = serve("--config", str(config), *(["--data", str(data)] if where == "option" else []))
    line = refusal(done)
    assert line.startswith(f"data folder {data}: cannot write (") and line.endswith(")"), line
    assert (tmp_path / "a" / "file").read_text() == "not a folder\n"


@pytest.mark.parametrize("options, env", [
    (["--fsync", "sometimes"], {}),
    ([], {"TOUCHPOINT_FSYNC": "sometimes"}),
])
def test_a_bad_fsync_option_exits_2_in_one_line(tmp_path, options, env):
    done = serve("--data", str(tmp_path / "state"), "--write-key", "KEY", *options, env=env)
    assert refusal(done) == "fsync 'sometimes': expected batch or none"


def test_a_port_in_use_exits_2_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = serve("--data", str(tmp_path / "state"), "--write-key", "KEY", "--port", str(port))
    assert refusal(done) == f"cannot serve on 127.0.0.1:{port}: Address already in use"


@pytest.mark.parametrize("option", [["--snapshot-every", "0"], ["--port", "70000"], ["--port", "abc"]])
def test_a_bad_option_is_refused_by_the_command_line_without_a_traceback(tmp_path, option):
    done = subprocess.run([*SERVE, "--data", str(tmp_path / "state"), "--write-key", "KEY", *option],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert option[0] in done.stderr  # click's usage error names the option
    assert not (tmp_path / "state").exists()


def test_a_file_with_every_key_starts_the_service(tmp_path, config):
    data = tmp_path / "state"
    config.write_text(
        f'data = "{data.as_posix()}"\nhost = "127.0.0.1"\nport = 0\nwrite_keys = ["KEY"]\n'
        'admin_token = "TOKEN"\nsnapshot_every = 300\nfsync = "none"\n'
    )
    process = subprocess.Popen([*SERVE, "--config", str(config)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        serving = next((line for line in process.stdout if "serving" in line), "")
        assert re.search(rf"serving http://127\.0\.0\.1:\d+ \(data: {re.escape(str(data))}\)", serving)
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0, out
    assert not list(data.glob(".touchpoint-write-probe"))  # the probe of the data folder is gone
