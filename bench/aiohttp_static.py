"""aiohttp's `web.static` serving one directory: the asyncio peer in the server bench.

Access logging is off so it does the same work as the other servers under test.

    python bench/aiohttp_static.py --root DIR --port N [--bind 127.0.0.1]
"""

import argparse

from aiohttp import web


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--bind", default="127.0.0.1")
    args = ap.parse_args()
    app = web.Application()
    app.router.add_static("/", args.root)
    # A deep backlog so the 1,000-connection run is not throttled by the default of 128.
    web.run_app(app, host=args.bind, port=args.port, access_log=None, backlog=4096,
                print=lambda *_: print(f"aiohttp serving on http://{args.bind}:{args.port}/",
                                       flush=True))


if __name__ == "__main__":
    main()
