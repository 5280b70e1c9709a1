"""app.log shared by several processes: every line whole and kept across rotation."""

import logging
import multiprocessing

from imagehost import logs

LINES_EACH = 300
PROCESSES = 3


def _write_lines(path, role: str) -> None:
    """One 'worker process': its own handler on the shared file, as logs.setup makes."""
    handler = logs.SharedRotatingFileHandler(path)
    handler.setFormatter(logs.TextFormatter(role))
    for n in range(LINES_EACH):
        message = f"{role} line {n:04d} " + "x" * 80
        handler.handle(logging.LogRecord("imagehost.test", logging.INFO, "", 0, message, (), None))
    handler.close()


def test_processes_append_whole_lines_and_rotate_once_each_time(tmp_path, monkeypatch):
    """~120 KB of lines through 32 KB files and 5 backups, from 3 processes at once. Appends
    take no lock (one write per line, O_APPEND); rotation does, and a process that wrote on
    into the renamed file loses nothing: every line is in app.log or a backup, once."""
    monkeypatch.setattr(logs, "MAX_LOG_BYTES", 32 * 1024)  # inherited by the forked processes
    path = tmp_path / "app.log"
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_write_lines, args=(path, f"w{i}")) for i in range(PROCESSES)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    files = [path, *(path.with_name(f"app.log.{i}") for i in range(1, logs.BACKUP_COUNT + 1))]
    kept = [line for f in files if f.exists() for line in f.read_text().splitlines()]
    assert path.with_name("app.log.1").exists()  # it did rotate
    sent = {f"w{i} line {n:04d} " + "x" * 80 for i in range(PROCESSES) for n in range(LINES_EACH)}
    messages = [line.split(" ", 3)[3].rsplit(" role=", 1)[0] for line in kept]
    assert sorted(messages) == sorted(sent)  # none lost, none doubled, none torn
    assert all(line.endswith(("role=w0", "role=w1", "role=w2")) for line in kept)
