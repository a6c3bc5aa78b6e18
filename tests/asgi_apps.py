"""ASGI applications the ASGI tests serve: a Starlette app, a FastAPI app, and raw ASGI
callables for the exact events and the bad cases. `seen` collects what the applications
observed (scopes, disconnects, lifespan events), for the tests to assert on."""

import asyncio
import contextlib
import os
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

seen = {}


# -- Starlette -------------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def starlette_lifespan(app):
    seen["lifespan"] = ["startup"]
    yield {"greeting": "hello from lifespan"}
    seen["lifespan"].append("shutdown")


async def home(request):
    return JSONResponse({"greeting": request.state.greeting, "path": request.url.path,
                         "query": dict(request.query_params)})


async def count(request):
    sizes = []
    async for chunk in request.stream():
        if chunk:
            sizes.append(len(chunk))
    return JSONResponse({"total": sum(sizes), "pieces": len(sizes)})


async def numbers(request):
    async def produce():
        for i in range(5):
            yield f"{i}\n"
            await asyncio.sleep(0.01)
    return StreamingResponse(produce(), media_type="text/plain")


def remember(value):
    seen.setdefault("background", []).append(value)


async def later(request):
    return PlainTextResponse("queued", background=BackgroundTask(remember, "ran"))


room = set()


async def chat(websocket: WebSocket):
    await websocket.accept()
    room.add(websocket)
    try:
        while True:
            text = await websocket.receive_text()
            if text == "all":
                for member in list(room):
                    await member.send_text(f"broadcast to {len(room)}")
            else:
                await websocket.send_text(f"echo {text}")
    except WebSocketDisconnect as closed:
        seen.setdefault("ws_closed", []).append(closed.code)
    finally:
        room.discard(websocket)


starlette_app = Starlette(routes=[Route("/", home), Route("/count", count, methods=["POST"]),
                                  Route("/numbers", numbers), Route("/later", later),
                                  WebSocketRoute("/chat", chat)],
                          lifespan=starlette_lifespan)


# -- FastAPI ---------------------------------------------------------------------------------

fastapi_app = FastAPI()


class Item(BaseModel):
    name: str
    price: float


@fastapi_app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None):
    return {"item_id": item_id, "q": q}


@fastapi_app.post("/items")
async def create_item(item: Item):
    return {"name": item.name, "price_with_tax": round(item.price * 1.2, 2)}


@fastapi_app.get("/blocking")
def blocking():
    return {"thread": "pool"}   # a plain def runs on anyio's threads


@fastapi_app.websocket("/echo")
async def fastapi_echo(websocket: WebSocket):
    await websocket.accept(subprotocol="chat.v1" if websocket.scope["subprotocols"] else None)
    try:
        while True:
            data = await websocket.receive_bytes()
            await websocket.send_bytes(data)
    except WebSocketDisconnect as closed:
        seen.setdefault("ws_closed", []).append(closed.code)


# -- raw ASGI --------------------------------------------------------------------------------

async def read_body(receive) -> tuple:
    """(body, the more_body flags of the messages it came in)."""
    parts, flags = [], []
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        parts.append(message.get("body", b""))
        flags.append(message.get("more_body", False))
        if not flags[-1]:
            return b"".join(parts), flags


async def respond(send, status, body: bytes, headers=()):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), *headers]})
    await send({"type": "http.response.body", "body": body})


async def raw_app(scope, receive, send):
    """The behaviours of the http and websocket scopes, chosen by path."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            seen.setdefault("raw_lifespan", []).append(message["type"])
            if os.environ.get("LIFESPAN_LOG"):   # processes of the command line tests
                with open(os.environ["LIFESPAN_LOG"], "a") as log:
                    log.write(f"{os.getpid()} {message['type']}\n")
            if message["type"] == "lifespan.startup":
                scope["state"]["counter"] = 41
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"][len(scope["root_path"]):]
    if scope["type"] == "websocket":
        await raw_websocket(scope, receive, send)
        return
    if path == "/scope":
        seen["scope"] = {k: v for k, v in scope.items() if k != "state"}
        seen["state"] = scope["state"]
        body, flags = await read_body(receive)
        seen["body"], seen["flags"] = body, flags
        await respond(send, 200, b"ok")
    elif path == "/header":
        # ?name=value as the one field of the response, both as sent (percent-decoded).
        name, _, value = unquote_to_bytes(scope["query_string"]).partition(b"=")
        await respond(send, 200, b"ok", [(name, value)])
    elif path == "/trailers":
        offered = "http.response.trailers" in scope["extensions"]
        seen.setdefault("trailers_offered", []).append(offered)
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"he", "more_body": True})
        await send({"type": "http.response.body", "body": b"llo"})
        await send({"type": "http.response.trailers", "more_trailers": True,
                    "headers": [(b"x-digest", b"sha-256=abc")]})
        await send({"type": "http.response.trailers",
                    "headers": [(b"x-count", b"5"), (b"content-length", b"9")]})
    elif path == "/until-disconnect":
        received = []
        while True:
            message = await receive()
            received.append(message["type"])
            if message["type"] == "http.disconnect":
                seen["until_disconnect"] = received
                return
    elif path in ("/slow-reader", "/slower-reader"):
        await asyncio.sleep(0.5 if path == "/slow-reader" else 1.5)
        first = await receive()
        seen["first_piece"] = len(first["body"])
        body, _ = await read_body(receive) if first["more_body"] else (b"", None)
        await respond(send, 200, str(len(first["body"]) + len(body)).encode())
    elif path == "/wait-disconnect":
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        message = await receive()
        seen["disconnect"] = message["type"]
    elif path == "/sleep":
        await asyncio.sleep(0.3)
        await respond(send, 200, b"slept")
    elif path == "/file":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(os.path.getsize(__file__)).encode())]})
        await send({"type": "http.response.pathsend", "path": __file__})
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"part%d;" % i,
                        "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/big-stream":
        # 8 MiB in 64 KiB pieces: send() must wait for the client, not queue it all.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        piece = b"x" * 65536
        for _ in range(128):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/endless":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
                await asyncio.sleep(0.01)
        except OSError as error:
            seen["endless"] = type(error).__name__
    elif path == "/sized":
        # A body of ?N bytes; counted once it is handed to the server.
        await respond(send, 200, b"s" * int(scope["query_string"]))
        seen["sized"] = seen.get("sized", 0) + 1
    elif path == "/no-start":
        return
    elif path == "/start-twice":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.start", "status": 200, "headers": []})
    elif path == "/raise-after-start":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("failed after the start")
    elif path == "/raise-mid-body":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        raise RuntimeError("failed in the middle of the body")
    else:
        body, _ = await read_body(receive)
        await respond(send, 200, b"%s %s %d" % (scope["method"].encode(),
                                                 path.encode(), len(body)))


async def raw_websocket(scope, receive, send):
    path = scope["path"]
    assert (await receive())["type"] == "websocket.connect"
    seen["ws_scope"] = {k: v for k, v in scope.items() if k != "state"}
    if path == "/deny":
        await send({"type": "websocket.http.response.start", "status": 403,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "websocket.http.response.body", "body": b"not you"})
        return
    if path == "/close-first":
        await send({"type": "websocket.close"})
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            seen.setdefault("raw_ws_closed", []).append(message["code"])
            return
        if message.get("text") == "close please":
            await send({"type": "websocket.close", "code": 4001, "reason": "asked"})
            continue
        await send({"type": "websocket.send", "text": message.get("text"),
                    "bytes": message.get("bytes")})


async def failing_startup(scope, receive, send):
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "database unreachable"})


def make_app():
    """For --factory."""
    return raw_app
