"""A FastAPI application with a JSON API and a WebSocket chat, for `--asgi`:

    python -m reactor --asgi examples.fastapi_app:app --root examples/files

Files under --root (the page, its script) are served first, by the server itself; every
other path goes to the application.
"""

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel

app = FastAPI()
notes: list = []
listeners: set = set()


class Note(BaseModel):
    text: str


@app.get("/api/notes")
async def list_notes():
    return {"notes": notes}


@app.post("/api/notes", status_code=201)
async def add_note(note: Note):
    notes.append(note.text)
    for listener in list(listeners):
        await listener.send_json({"added": note.text})
    return {"count": len(notes)}


@app.websocket("/api/live")
async def live(websocket: WebSocket):
    """Every note added from now on, as it is added."""
    await websocket.accept()
    listeners.add(websocket)
    try:
        while True:
            await websocket.receive_text()   # nothing to say; waits for the close
    except WebSocketDisconnect:
        pass
    finally:
        listeners.discard(websocket)
