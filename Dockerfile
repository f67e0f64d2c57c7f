# syntax=docker/dockerfile:1
# Two stages: dependencies are installed into a virtualenv in the first, and only that virtualenv
# and the app are copied into the slim runtime stage (no compilers, no pip cache, no build files).
# The base image is pinned by version; pin it by digest too in a registry you control.

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /build
COPY requirements.txt constraints.txt ./
# requirements.txt pins what the app imports; constraints.txt pins every transitive dependency
# too, as `make` installs them: the image holds exactly the versions the tests ran against.
# numpy, pandas, bcrypt and uvloop ship wheels.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r requirements.txt -c constraints.txt


FROM python:3.11.11-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/venv/bin:$PATH" \
    APP_ENV=production \
    APP_HOST=0.0.0.0 \
    APP_PORT=8000 \
    APP_LOG_FORMAT=json \
    APP_SHUTDOWN_DRAIN_SECONDS=5 \
    APP_GRACEFUL_SHUTDOWN_SECONDS=20

# A fixed, non-root user: Kubernetes' runAsUser and file ownership can rely on the numbers.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app \
    && install -d -o app -g app -m 0750 /var/lib/resilient-api

COPY --from=build /opt/venv /opt/venv
WORKDIR /srv
COPY app ./app
# Compiled once here, so a read-only root file system costs nothing at start-up.
RUN python -m compileall -q /srv/app

USER 10001:10001
EXPOSE 8000
VOLUME ["/var/lib/resilient-api"]

HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/live', timeout=2).status != 200)"]

# Exec form: python is PID 1 and receives SIGTERM itself. `python -m app` runs uvicorn with the
# settings' host, port, graceful-shutdown timeout and drain; client addresses behind proxies come
# from APP_TRUSTED_PROXIES (uvicorn's own --proxy-headers is off so the two cannot disagree).
STOPSIGNAL SIGTERM
CMD ["python", "-m", "app"]
