"""Runs `ledger ARGS` in this process and writes its own peak RSS to a file at exit.

    python -m bench.peak_rss_child OUT_FILE ARGS...

The peak is the kernel's `VmHWM` of this process's memory (`/proc/self/status`), in MB. It is
not `ru_maxrss` from `wait4`: Linux folds the parent's resident set at the moment of `fork`
into the child's `ru_maxrss` when the child calls `exec`, so every child of a benchmark process
that holds 200 MB reported 200 MB, whatever it did itself.
"""

from __future__ import annotations

import atexit
import sys


def _report(path: str) -> None:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                with open(path, "w") as out:
                    out.write(str(int(line.split()[1]) // 1024))  # kB -> MB
                return


if __name__ == "__main__":
    out_file, sys.argv = sys.argv[1], ["ledger", *sys.argv[2:]]
    atexit.register(_report, out_file)
    from ledger.cli import entry

    entry()
