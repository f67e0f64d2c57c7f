"""A client generated from the served OpenAPI document compiles and drives the users routes:
what people who generate clients get is usable as it is (stable operation ids, problem
details under their real media type, no nullable fields the server refuses)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.helpers import unique_email
from tests.live_server import LiveServer


def test_a_generated_client_registers_reads_and_logs_in(
    live_server: LiveServer, tmp_path: Path
) -> None:
    schema = tmp_path / "openapi.json"
    schema.write_bytes(httpx.get(f"{live_server.base_url}/openapi.json").content)
    generator = Path(sys.executable).with_name("openapi-python-client")
    result = subprocess.run(
        [str(generator), "generate", "--path", str(schema), "--output-path", str(tmp_path / "gen")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Warning" not in result.stdout, result.stdout[-3000:]
    sys.path.insert(0, str(tmp_path / "gen"))
    try:
        package = "resilient_api_client"
        client_module = importlib.import_module(package)
        users_create = importlib.import_module(f"{package}.api.users.users_create_user")
        users_get = importlib.import_module(f"{package}.api.users.users_get_user")
        models = importlib.import_module(f"{package}.models")
        client = client_module.Client(base_url=live_server.base_url)
        email = unique_email("generated")
        created = users_create.sync_detailed(
            client=client,
            body=models.UserCreate(email=email, name="Generated", password="password123"),
        )
        assert created.status_code == 201
        assert created.parsed.email == email
        fetched = users_get.sync(client=client, user_id=created.parsed.id)
        assert fetched.name == "Generated"
        missing = users_get.sync_detailed(client=client, user_id=999_999)
        assert missing.status_code == 404
        assert missing.parsed.type_ == "/problems/not-found"  # typed as Problem, not as JSON
    finally:
        sys.path.remove(str(tmp_path / "gen"))
