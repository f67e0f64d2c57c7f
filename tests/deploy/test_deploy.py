"""The deployment files: the Dockerfile linted, the manifests rendered, validated against the
Kubernetes schemas, scanned by checkov, and checked for the rules that keep a rollout safe."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.live_server import ROOT

TOOLS = ROOT / ".venv-tools" / "bin"
K8S_VERSION = "1.31.0"


def _tool(name: str) -> str:
    path = TOOLS / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail(f"{name} is missing: `make test` installs it into .venv-tools")
    pytest.skip(f"{name} not installed (make test installs it into .venv-tools)")


def _render(directory: Path) -> str:
    kubectl = shutil.which("kubectl")
    if kubectl:
        return subprocess.run(
            [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=True
        ).stdout
    # Without kubectl, the base is simple enough to assemble: its files plus the namespace.
    base = ROOT / "k8s" / "base"
    spec = yaml.safe_load((base / "kustomization.yaml").read_text())
    docs = []
    for name in spec["resources"]:
        for doc in yaml.safe_load_all((base / name).read_text()):
            if doc["kind"] != "Namespace":
                doc["metadata"].setdefault("namespace", spec["namespace"])
            docs.append(doc)
    if directory.name == "prometheus-operator":
        docs += list(yaml.safe_load_all((directory / "servicemonitor.yaml").read_text()))
    return yaml.safe_dump_all(docs)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("k8s") / "rendered.yaml"
    path.write_text(_render(ROOT / "k8s"))
    return path


@pytest.fixture(scope="module")
def objects(rendered: Path) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(rendered.read_text()) if doc}


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [_tool("hadolint"), "--failure-threshold", "style", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_dockerfile_runs_as_a_fixed_non_root_user_with_exec_form_cmd() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "USER 10001:10001" in text
    assert 'CMD ["python", "-m", "app"]' in text
    assert "HEALTHCHECK" in text
    assert "/live" in text
    assert text.count("FROM ") == 2  # build stage + slim runtime stage
    assert "PYTHONDONTWRITEBYTECODE=1" in text
    assert "PYTHONUNBUFFERED=1" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests", ".env"} <= set(ignored)


def test_manifests_render_with_every_object(objects: dict[str, dict[str, Any]]) -> None:
    assert set(objects) == {
        "Namespace",
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    assert all(
        o["metadata"].get("namespace") == "resilient-api"
        for k, o in objects.items()
        if k != "Namespace"
    )


def test_manifests_are_valid_against_the_kubernetes_schemas(rendered: Path, tmp_path: Path) -> None:
    validate = _tool("kubernetes-validate")
    result = subprocess.run(
        [validate, "--strict", "-k", K8S_VERSION, str(rendered)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(_render(ROOT / "k8s" / "overlays" / "prometheus-operator"))
    result = subprocess.run(
        [validate, "--strict", "-k", K8S_VERSION, str(overlay)], capture_output=True, text=True
    )
    # The ServiceMonitor is a custom resource: kubernetes-validate has no schema for it (a warning).
    assert result.returncode == 0, result.stdout + result.stderr
    assert "kind: ServiceMonitor" in overlay.read_text()


def test_manifests_pass_checkov(rendered: Path) -> None:
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    result = subprocess.run(
        [_tool("checkov"), "-f", str(rendered), "--config-file", str(ROOT / ".checkov.yaml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Failed checks: 0" in result.stdout


def test_deployment_probes_cannot_kill_a_busy_pod(objects: dict[str, dict[str, Any]]) -> None:
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    api = pod["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/live"
    liveness = api["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 60
    assert api["startupProbe"]["periodSeconds"] * api["startupProbe"]["failureThreshold"] >= 60


def test_shutdown_fits_in_the_grace_period(objects: dict[str, dict[str, Any]]) -> None:
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    config = objects["ConfigMap"]["data"]
    pre_stop = int(pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
    needed = (
        pre_stop
        + float(config["APP_SHUTDOWN_DRAIN_SECONDS"])
        + float(config["APP_GRACEFUL_SHUTDOWN_SECONDS"])
    )
    assert pod["terminationGracePeriodSeconds"] > needed


def test_pod_runs_locked_down_with_writable_volumes_where_the_app_writes(
    objects: dict[str, dict[str, Any]],
) -> None:
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    container = pod["containers"][0]["securityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    snapshot_dir = str(Path(objects["ConfigMap"]["data"]["APP_SNAPSHOT_PATH"]).parent)
    assert {snapshot_dir, "/tmp"} <= mounts  # noqa: S108 - the pod's /tmp emptyDir


def test_scaling_and_disruption_rules(objects: dict[str, dict[str, Any]]) -> None:
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert objects["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    # Each replica has its own store: keep a client on one replica.
    assert objects["Service"]["spec"]["sessionAffinity"] == "ClientIP"
    workers = int(objects["ConfigMap"]["data"]["APP_PROCESS_POOL_WORKERS"])
    cpu_limit = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]["resources"][
        "limits"
    ]["cpu"]
    assert workers <= float(cpu_limit)


def test_config_map_holds_no_secrets_and_valid_settings(objects: dict[str, dict[str, Any]]) -> None:
    from app.core.config import SettingsError, load_settings

    data = objects["ConfigMap"]["data"]
    assert not any(key in data for key in ("APP_JWT_SECRET_KEY", "APP_ADMIN_PASSWORD"))
    secrets_example = yaml.safe_load((ROOT / "k8s" / "secret.example.yaml").read_text())
    values = {
        k.removeprefix("APP_").lower(): v
        for k, v in {**data, **secrets_example["stringData"]}.items()
    }
    values["jwt_secret_key"] = "Yq3vN8rT1xWm6pLk2Hs9Dz4Bf7Gc0JeA5uR"  # the example is a placeholder
    values["admin_password"] = "a-real-password"
    values["bcrypt_rounds"] = 12  # the test environment lowers it; the image keeps the default
    settings = load_settings(**values)
    assert settings.env == "production"
    # The example Secret's own values are refused: applying it as it is fails closed.
    with pytest.raises(SettingsError):
        load_settings(
            **{**values, "jwt_secret_key": secrets_example["stringData"]["APP_JWT_SECRET_KEY"]}
        )
    with pytest.raises(SettingsError):
        load_settings(
            **{**values, "admin_password": secrets_example["stringData"]["APP_ADMIN_PASSWORD"]}
        )
