"""The scripts/ tools run end to end on tiny inputs."""
import os

from conftest import PHOTO, ROOT, run_python


def test_speed_benchmark_runs_and_prints_a_table(tmp_path):
    import shutil

    shutil.copy(PHOTO, tmp_path / "a.png")
    out = tmp_path / "speed.json"
    proc = run_python([os.path.join(ROOT, "scripts", "benchmark.py"), "--data", str(tmp_path),
                       "--models", "", "--anchors", "jpeg,webp", "--runs", "1", "--bpp", "0.5",
                       "--json", str(out)], timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("| jpeg")]
    assert len(lines) == 1 and "| 1 | 1 |" in lines[0]  # ratios to itself
    assert out.exists() and '"codec": "webp"' in out.read_text()
