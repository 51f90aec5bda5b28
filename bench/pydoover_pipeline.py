"""The reference Python processor library's pipeline (pydoover.processor.run_app) on the events doryd's
pipeline bench uses, with the library's HTTP layer replaced by an in-memory recorder.

    python bench/pydoover_pipeline.py --events 5000        # prints one JSON object

The application implements a trivial on_schedule handler. Each event carries an `upgrade` object, so
setup needs no fetch; every request the library would send (the invocation summary on
dv-proc-inv-42, tag writes) goes to `Recorder` instead of aiohttp. Logs go where the library sends
them (standard output, JSON at INFO); run it with standard output redirected to /dev/null.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from pydoover.processor import Application, run_app
from pydoover.processor.data_client import ProcessorDataClient

UPGRADE = {
    "agent_id": "1", "organisation_id": "2", "app_key": "my_app",
    "deployment_config": {"APP_ID": "42"}, "ui_state": {}, "ui_cmds": None,
    "tag_values": {"my_app": {"temp": 20}}, "connection_data": None, "token": "full-token",
}
EVENT = {"op": "on_schedule", "token": "long-lived-schedule-token",
         "d": {"schedule_id": "123", "organisation_id": "2", "upgrade": UPGRADE}}


class Recorder:
    """Stands in for the Doover data API: records each request, answers like the service would."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.next_id = 1

    async def request(self, method: str, path: str, data: Any = None, **_kwargs: Any) -> Any:
        self.requests.append((method, path, data))
        self.next_id += 1
        if method == "POST" and path.endswith("/messages"):
            return {"id": str(self.next_id), "author_id": "1",
                    "channel": {"agent_id": "1", "name": path.rsplit("/", 2)[-2]},
                    "data": data, "attachments": []}
        return {}


def install(recorder: Recorder) -> None:
    async def no_op(self) -> None:
        return None

    async def request(self, method, path, data=None, files=None, params=None, organisation_id=None):
        return await recorder.request(method, path, data)

    ProcessorDataClient.setup = no_op
    ProcessorDataClient.close = no_op
    ProcessorDataClient._request = request


class Trivial(Application):
    async def on_schedule(self, event) -> None:
        return None


class Context:
    function_name = "my-app"
    function_version = "1.0.0"

    def __init__(self, n: int) -> None:
        self.aws_request_id = f"req-{n}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=200)
    opts = parser.parse_args()

    recorder = Recorder()
    install(recorder)
    app = Trivial()
    for n in range(opts.warmup):
        run_app(app, json.loads(json.dumps(EVENT)), Context(n))
    summaries_before = sum(1 for r in recorder.requests if "dv-proc-inv-42" in r[1])
    start = time.perf_counter()
    for n in range(opts.events):
        # A fresh dict per event, as a decoded request body would be.
        run_app(app, json.loads(json.dumps(EVENT)), Context(n))
    elapsed = time.perf_counter() - start
    summaries = sum(1 for r in recorder.requests if "dv-proc-inv-42" in r[1]) - summaries_before
    if summaries != opts.events:
        print(json.dumps({"error": f"{summaries} summaries recorded for {opts.events} events"}), file=sys.stderr)
        return 1
    sys.__stderr__.write(json.dumps({"events": opts.events, "seconds": elapsed,
                                     "events_per_s": opts.events / elapsed, "summaries": summaries}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
