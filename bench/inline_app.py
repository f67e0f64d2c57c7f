"""The app plus one bench-only route that scores on the event loop: the baseline of
bench/scoring_pool.py. Run as `python -m bench.inline_app`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.__main__ import serve
from app.core.config import Settings, get_settings
from app.core.lifecycle import Lifecycle
from app.main import create_app
from app.services.scoring import worker as scoring


def inline_app(settings: Settings, lifecycle: Lifecycle) -> FastAPI:
    """The app plus `/bench/inline-scoring`."""
    app = create_app(settings, lifecycle=lifecycle)
    limits = scoring.ScoringLimits(settings.scoring_max_records, settings.scoring_max_features)

    @app.post("/bench/inline-scoring", include_in_schema=False)
    async def inline_scoring(request: Request) -> JSONResponse:
        # Exactly what a worker does, but on the event loop: the mistake the pool prevents.
        return JSONResponse(scoring.score(await request.body(), limits))

    return app


if __name__ == "__main__":
    serve(get_settings(), inline_app)
