"""Train from a JSON config and SIGKILL this very process after step ``KILL_AT`` (test helper).

Usage: python -m tests.train.kill_run CONFIG.yaml KILL_AT
"""

from __future__ import annotations

import os
import signal
import sys

from rsajax.train import train


def main() -> None:
    config = sys.argv[1]
    kill_at = int(sys.argv[2])

    def kill(event: str, info: dict) -> None:
        if event == "step" and info["step"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    train(config, callbacks=[kill])
    sys.exit(3)  # reaching the end means the kill did not happen


if __name__ == "__main__":
    main()
