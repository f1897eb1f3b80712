"""The virtualenv that holds Quix Streams, the Kafka -> Kafka workload's baseline.

Quix Streams 3 pins ``confluent-kafka<2.13`` and this project installs a newer one, so
installing it beside the project would downgrade the client the Kafka source and sink
use. It gets a venv of its own, ``bench-data/quix-venv``, with the versions in
``bench/quix-requirements.txt``; ``bench/kafka_quix.py`` runs there. ``make bench``
creates it (``python -m bench.quix_env``); the workload creates it too when it is
missing, so ``python -m bench --only kafka`` works on a fresh checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys

from bench.harness import DATA_ROOT, REPO_ROOT

__all__ = ["QUIX_VENV", "REQUIREMENTS", "ensure_quix_python", "main"]

QUIX_VENV = os.path.join(DATA_ROOT, "quix-venv")
REQUIREMENTS = os.path.join(REPO_ROOT, "bench", "quix-requirements.txt")
_STAMP = os.path.join(QUIX_VENV, ".installed")
_INSTALL_TIMEOUT_S = 300


def _python() -> str:
    return os.path.join(QUIX_VENV, "bin", "python")


def _up_to_date() -> bool:
    """Installed from the current requirements file (a changed pin reinstalls)."""
    return (os.path.exists(_python()) and os.path.exists(_STAMP)
            and os.path.getmtime(_STAMP) >= os.path.getmtime(REQUIREMENTS))


def ensure_quix_python() -> str:
    """The venv's interpreter, creating the venv and installing Quix Streams first when
    needed; raises ``RuntimeError`` with pip's last words when that fails."""
    if _up_to_date():
        return _python()
    steps = [[sys.executable, "-m", "venv", QUIX_VENV],
             [_python(), "-m", "pip", "install", "--quiet", "-r", REQUIREMENTS]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False,
                              timeout=_INSTALL_TIMEOUT_S)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
            raise RuntimeError(f"installing Quix Streams into {QUIX_VENV} failed: "
                               f"{detail[0]}")
    with open(_STAMP, "w"):
        pass
    return _python()


def main() -> int:
    print(f"Quix Streams venv ready: {ensure_quix_python()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
