"""The counter processor of `doryd demo`, written on the reference Python SDK (`pip install dory-sdk`).

Used by bench/bench.py as the "python SDK" column. Like `doryd demo`, it adds 1 to a
stateful counter every 100 ms; BENCH_STATE_BYTES pads the state with a string of about
that many bytes (like `doryd demo --state-bytes N`).

Two things the SDK hard-codes are redirected so that a bench run stays in its own
temporary directory and on loopback, and nothing else about the SDK is changed:
  * the local state backend writes `/data/dory-state-<id>.json`, or `/tmp/...` when
    `/data` is missing: here it writes `$BENCH_STATE_DIR/dory-state-<id>.json`;
  * the health server binds `0.0.0.0`: here it binds `127.0.0.1`.

Environment the SDK reads itself (set by bench.py): DORY_HEALTH_PORT, DORY_STATE_BACKEND=local,
DORY_LOG_LEVEL, DORY_PROCESSOR_ID, RESTART_COUNT=0 (otherwise the SDK keeps a restart counter
in /tmp/dory-restart-marker, shared by every run on the machine).
"""

import os
import pathlib

from dory import BaseProcessor, DoryApp, stateful
from dory.health import server as health_server
from dory.migration.state_manager import StateManager

_state_dir = os.environ.get("BENCH_STATE_DIR")
if _state_dir:
    _path = str(pathlib.Path(_state_dir) / "dory-state.json")
    StateManager.LOCAL_STATE_PATH = _path
    StateManager.LOCAL_STATE_PATH_FALLBACK = _path

_RealTCPSite = health_server.web.TCPSite


class _LoopbackTCPSite(_RealTCPSite):
    """The SDK's TCPSite with the host forced to loopback."""

    def __init__(self, runner, host=None, port=None, **kwargs):
        super().__init__(runner, host="127.0.0.1", port=port, **kwargs)


health_server.web.TCPSite = _LoopbackTCPSite

_PAD = "x" * int(os.environ.get("BENCH_STATE_BYTES", "0") or "0")


class Counter(BaseProcessor):
    """+1 every 100 ms; the state is {"counter": N} plus an optional padding string."""

    counter = stateful(0)
    pad = stateful(lambda: _PAD)

    async def run(self) -> None:
        async for _ in self.run_loop(interval=0.1):
            self.counter += 1


if __name__ == "__main__":
    DoryApp().run(Counter)
