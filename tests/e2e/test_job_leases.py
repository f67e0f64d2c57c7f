"""Scoring jobs carry a heartbeat: a replica killed (SIGKILL) mid-job leaves a job that another
replica reports failed, with the reason, within seconds, through real processes on a real
redis-server.

On acf3955 the job stayed `running` (progress frozen) until its 600 s expiry.
"""

from __future__ import annotations

import signal
import time

import httpx

from tests.conftest import ServerFactory
from tests.redis_server import RedisServer

JOBS = "/api/v1/scoring/jobs"


def _env(module_redis: RedisServer) -> dict[str, str]:
    return {
        "APP_STORE": "redis",
        "APP_REDIS_URL": module_redis.url,
        "APP_PROCESS_POOL_WORKERS": "1",
        # Many small chunks: the job runs long enough to be killed in the middle.
        "APP_SCORING_JOB_CHUNK_RECORDS": "100",
        "APP_MAX_BODY_BYTES": str(8 * 1_048_576),
    }


def test_a_job_whose_replica_died_is_reported_failed_with_the_reason(
    module_redis: RedisServer, server_factory: ServerFactory
) -> None:
    doomed = server_factory(_env(module_redis))
    survivor = server_factory(_env(module_redis))
    features = {f"f{k}": 1.0 for k in range(8)}
    records = [{"id": str(i), "features": {**features, "f0": float(i)}} for i in range(30_000)]
    with httpx.Client(base_url=doomed.base_url, timeout=30) as a:
        accepted = a.post(JOBS, json={"records": records, "weights": {"f0": 1.0}})
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]
        for _ in range(400):
            state = a.get(f"{JOBS}/{job_id}").json()
            if state["status"] == "running" and state["progress"] > 0.1:
                break
            time.sleep(0.02)
        assert state["status"] == "running", state
    doomed.process.send_signal(signal.SIGKILL)
    doomed.process.wait(10)

    with httpx.Client(base_url=survivor.base_url, timeout=30) as b:
        polls = 0
        while (state := b.get(f"{JOBS}/{job_id}").json())["status"] == "running":
            polls += 1
            assert polls < 100, "still running long after its replica died"
            time.sleep(0.2)
        assert state["status"] == "failed"
        assert "stopped before it finished" in state["error"]
        # Final: asked again, on either replica, it stays failed.
        assert b.get(f"{JOBS}/{job_id}").json()["status"] == "failed"
    assert "scoring_job_orphaned" in survivor.log_text()
