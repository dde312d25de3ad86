"""The memory ceiling of heavy tests: a test growing past it fails alone, the run goes on."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_test_growing_past_its_ceiling_fails_alone_and_the_run_goes_on(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.memory_ceiling(0.1)
        def test_grows_past_it():
            hoard = []
            for _ in range(1_000):  # 1 GiB at most, a MiB at a time, each page touched
                hoard.append(b"x" * (1 << 20))
            raise AssertionError("never stopped")

        @pytest.mark.memory_ceiling(0.1)
        def test_stays_under_it():
            assert len(b"x" * (10 << 20)) == 10 << 20

        def test_after():
            pass
        """
    )

    result = pytester.runpytest_subprocess("-p", "tests.memory_ceiling", "-p", "no:django")

    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["*MemoryCeilingExceeded: *test_grows_past_it grew * GiB, past its memory_ceiling of 0.1*"]
    )
