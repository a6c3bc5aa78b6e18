"""The C parser's own tests, run from pytest: `make -C csrc test` (unit tests on a guard page
under ASan/UBSan) and a short libFuzzer run (CI runs the minute-long one: `make -C csrc fuzz`).
Skipped, with the reason, where the compilers or make are missing."""

import os
import shutil
import subprocess

import pytest

CSRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "csrc")


def _run(*args, timeout):
    return subprocess.run(["make", "-C", CSRC, *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None,
                    reason="needs make and a C compiler (cc)")
def test_c_unit_tests_under_sanitizers():
    result = _run("test", timeout=120)
    if result.returncode and "sanitize" in result.stderr and "cannot find" in result.stderr:
        pytest.skip("the C compiler has no ASan/UBSan runtime")
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failures" in result.stdout


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("clang") is None,
                    reason="needs clang for libFuzzer (apt-get install clang)")
def test_fuzz_briefly():
    result = _run("fuzz", "FUZZ_SECONDS=5", timeout=120)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
