"""The README's first command runs examples/demo_mlp.py: it must run and visibly learn."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_mlp_learns_the_spirals():
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "demo_mlp.py"), "--steps", "200"],
                            capture_output=True, text=True, timeout=120, check=True)
    rows = re.findall(r"step\s+\d+\s+loss (\d+\.\d+)\s+accuracy\s+(\d+\.\d)%", result.stdout)
    losses = [float(loss) for loss, _ in rows]
    assert len(losses) == 11, result.stdout
    assert losses[-1] < losses[0] / 5, result.stdout           # ~1.1 at chance, well under 0.2 when learned
    assert float(rows[-1][1]) > 90.0, result.stdout            # chance is 33%
