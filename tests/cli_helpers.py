"""Running the `ledger` command line as a user would: a separate process, real exit codes.

`python -m ledger.cli` is the same entry point as the `ledger` console script (`ledger.cli:entry`);
running it through `sys.executable` keeps the test on the interpreter (and venv) pytest runs in.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

LEDGER = [sys.executable, "-m", "ledger.cli"]

#: The canonical hyphenated, lower-case form of a UUID, alone on its line.
UUID_LINE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\n")

#: Variables that would change what the command line does behind the test's back.
_LEDGER_ENV = ("LEDGER_DATABASE_URL", "LEDGER_ACTOR", "LEDGER_DEBUG", "LEDGER_CIPHER_KEY",
               "LEDGER_LOCK_TIMEOUT")


def ledger_env() -> dict[str, str]:
    """This process's environment without the ledger's own variables (so `--db`/`--as` rule)."""
    env = {key: value for key, value in os.environ.items() if key not in _LEDGER_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    if env.pop("PYTHONDONTWRITEBYTECODE", None):
        # Each `ledger` run would otherwise compile the (editable) package from source again;
        # keep the byte code outside the repository instead.
        env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "ledger-tests-pycache")
    return env


def ledger_argv(db_url: str | None, actor: str | None, *args: str) -> list[str]:
    """Global options first, then the subcommand, as DESIGN section 5 asks."""
    argv = list(LEDGER)
    if db_url is not None:
        argv += ["--db", db_url]
    if actor is not None:
        argv += ["--as", actor]
    return argv + [str(arg) for arg in args]


def run_ledger(db_url: str | None, actor: str | None, *args: str, cwd: Path | str | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Runs one `ledger` command and returns what it printed and its exit code."""
    return subprocess.run(
        ledger_argv(db_url, actor, *args), capture_output=True, text=True, env=ledger_env(),
        cwd=cwd, timeout=timeout, check=False,
    )


def run_ledger_together(calls: list[tuple[str | None, str | None, tuple[str, ...]]],
                        cwd: Path | str | None = None,
                        timeout: float = 60) -> list[subprocess.CompletedProcess[str]]:
    """Runs several independent `ledger` commands side by side; results in the order given.

    Only for commands whose outcome does not depend on one another (reads, refusals): it saves
    wall-clock time, nothing else.
    """
    processes = [
        (argv, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=ledger_env(), cwd=cwd))
        for argv in (ledger_argv(db_url, actor, *args) for db_url, actor, args in calls)
    ]
    results = []
    for argv, process in processes:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        results.append(subprocess.CompletedProcess(argv, process.returncode, stdout, stderr))
    return results


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """What a failed assertion should show: the command, its exit code and both streams."""
    command = " ".join(result.args[len(LEDGER):]) if isinstance(result.args, list) else result.args
    return (f"`ledger {command}` exited {result.returncode}\n--- stdout:\n{result.stdout}"
            f"--- stderr:\n{result.stderr}")


def expect_ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    return result


def expect_json(result: subprocess.CompletedProcess[str]) -> Any:
    expect_ok(result)
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as error:  # pragma: no cover - shown only when failing
        raise AssertionError(f"not JSON ({error}):\n{describe(result)}") from None


def expect_refusal(result: subprocess.CompletedProcess[str], exit_code: int) -> str:
    """A refusal: the exit code, nothing on stdout, one `ledger: ...` line on stderr, no traceback."""
    assert result.returncode == exit_code, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, describe(result)
    assert lines[0].startswith("ledger: "), describe(result)
    assert len(lines[0]) > len("ledger: ") + 5, describe(result)
    assert result.stdout == "", describe(result)
    return lines[0]


def run_ledger_in_process(db_url: str | None, actor: str | None,
                          *args: str) -> subprocess.CompletedProcess[str]:
    """`ledger --db URL --as ACTOR ARGS...` through `ledger.cli.main` (the console script's own
    function) in this process, output captured: for tests that run hundreds of commands."""
    import contextlib
    import io

    from ledger.cli import main

    argv = ledger_argv(db_url, actor, *args)[len(LEDGER):]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return subprocess.CompletedProcess([*LEDGER, *argv], code, out.getvalue(), err.getvalue())
