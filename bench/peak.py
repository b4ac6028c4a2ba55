"""A whole process's time and its own peak RSS, for the benches that compare processes.

The peak is the process's VmHWM (the high-water mark of its address space since exec), written at
exit by a small wrapper that runs the script or module as __main__. Not wait4's ru_maxrss: Linux
carries the parent's RSS at fork into the child's, so every child of a bench process that has grown
(a workspace built, a tokenizer loaded) would read at least the bench's own size.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

_HWM_WRAPPER = """
import atexit, os, runpy, sys
def _hwm():
    with open('/proc/self/status') as fh:
        kb = next(int(line.split()[1]) for line in fh if line.startswith('VmHWM:'))
    with open(os.environ['BENCH_HWM_FILE'], 'w') as out:
        out.write(str(kb))
atexit.register(_hwm)
target = sys.argv[1]
sys.argv = sys.argv[1:]
if target == '-m':
    sys.argv = sys.argv[1:]
    runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)
elif target == '-c':
    code, sys.argv = sys.argv[1], ['-c', *sys.argv[2:]]
    exec(compile(code, '<string>', 'exec'), {'__name__': '__main__'})
else:
    runpy.run_path(target, run_name='__main__')
"""


def measured(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | str | None = None,
             stdout=None, stderr=None, preexec_fn=None, timeout: float | None = None) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit code) of `argv` = [python, script or -m module or -c code,
    args...], start-up included; stdout and stderr go where the caller says."""
    with tempfile.NamedTemporaryFile(suffix=".hwm") as hwm:
        env = {**(env if env is not None else os.environ), "BENCH_HWM_FILE": hwm.name}
        start = time.perf_counter()
        proc = subprocess.Popen([argv[0], "-c", _HWM_WRAPPER, *argv[1:]], stdout=stdout, stderr=stderr, cwd=cwd,
                                env=env, preexec_fn=preexec_fn)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        elapsed = time.perf_counter() - start
        raw = Path(hwm.name).read_text().strip()
    return elapsed, int(raw or 0) / 1024, rc


def run_measured(argv: list[str], env: dict[str, str] | None = None, cwd: Path | str | None = None,
                 timeout: float | None = None) -> tuple[float, float, int, str]:
    """(wall seconds, peak RSS in MB, exit code, stdout and stderr) of `argv`, start-up included."""
    with tempfile.TemporaryFile() as out:
        elapsed, peak_mb, rc = measured(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return elapsed, peak_mb, rc, text
