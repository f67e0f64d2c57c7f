"""The baseline users compare against: bare FastAPI answering the same route with a constant
through a response model, served by the same uvicorn options. `python -m bench.fastapi_baseline`
(reads APP_PORT)."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

from bench._server import serve_plain

app = FastAPI()


class UserOut(BaseModel):
    """What the real route answers, less the timestamps."""

    id: int
    email: str
    name: str
    role: str
    is_active: bool


@app.get("/api/v1/users/{user_id}", response_model=UserOut)
async def get_user(user_id: int) -> UserOut:
    """A constant user: everything the real route does, minus the work."""
    return UserOut(
        id=user_id, email="admin@example.com", name="Admin", role="admin", is_active=True
    )


@app.get("/live")
async def live() -> dict[str, str]:
    """For the benchmark's readiness wait."""
    return {"status": "alive"}


if __name__ == "__main__":
    serve_plain(app)
