"""The classic first dynamic server: the current date and time, beside static files.

    python -m reactor --app examples.timeserver:app [--root DIR]
    python -m examples.timeserver [--root DIR]
    curl http://127.0.0.1:8000/time         # 2025-01-31T12:00:00+01:00
    curl http://127.0.0.1:8000/time.json    # {"iso": "...", "unix": 1738321200.0}

Every other path is a file under the server's --root (the demo site in a checkout).
"""

import json
import sys
from datetime import datetime

from reactor import App, Response

app = App()

# The answer changes every second: no cache may keep it.
NO_STORE = ("Cache-Control", "no-store")


@app.get("/time")
def time_text(request):
    now = datetime.now().astimezone()
    return Response(200, [("Content-Type", "text/plain; charset=utf-8"), NO_STORE],
                    now.isoformat(timespec="seconds").encode() + b"\n")


@app.get("/time.json")
def time_json(request):
    now = datetime.now().astimezone()
    body = json.dumps({"iso": now.isoformat(timespec="seconds"), "unix": now.timestamp()})
    return Response(200, [("Content-Type", "application/json"), NO_STORE], body.encode())


app.static("/")


if __name__ == "__main__":
    from reactor.cli import main
    sys.exit(main(["--app", "examples.timeserver:app", *sys.argv[1:]]))
