"""The deployment files: the Dockerfile linted, the manifests rendered, validated against the
Kubernetes schemas, scanned by checkov, and checked for the rules that keep a rollout safe."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis as redis_client
import yaml

from app.core.exceptions import SettingsError
from tests.live_server import ROOT, free_port

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


OVERLAYS = ("prometheus-operator", "local", "redis", "production")


def _render(directory: Path) -> str:
    # kubectl (with kustomize inside) comes as a wheel in .venv-tools: no cluster needed.
    return subprocess.run(
        [_tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True, check=True
    ).stdout


def _objects(text: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for doc in yaml.safe_load_all(text):
        if doc:
            found.setdefault(doc["kind"], []).append(doc)
    return found


@pytest.fixture(scope="module")
def overlays(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("overlays")
    paths = {}
    for name in OVERLAYS:
        paths[name] = folder / f"{name}.yaml"
        paths[name].write_text(_render(ROOT / "k8s" / "overlays" / name))
    return paths


# Every way the components combine: a store (none, one Redis, Redis with Sentinel), monitoring
# or not, an Ingress or not. `redis-ha` builds on `redis`, so it comes after it.
STORES: dict[str, tuple[str, ...]] = {
    "memory": (),
    "redis": ("redis",),
    "redis-ha": ("redis", "redis-ha"),
}
COMBINATIONS = {
    "+".join((store, *extras)): (*components, *extras)
    for store, components in STORES.items()
    for extras in ((), ("monitoring",), ("ingress",), ("monitoring", "ingress"))
}
# Tracing adds a setting and a policy, nothing another component touches: with everything else.
COMBINATIONS["redis-ha+monitoring+ingress+tracing"] = (
    *COMBINATIONS["redis-ha+monitoring+ingress"],
    "tracing",
)


@pytest.fixture(scope="module")
def combinations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each combination rendered from a kustomization of its own (as a team's overlay would
    be: the base plus the components it lists)."""
    folder = tmp_path_factory.mktemp("combinations")
    paths = {}
    for name, components in COMBINATIONS.items():
        overlay = folder / name
        overlay.mkdir()
        k8s = Path(os.path.relpath(ROOT / "k8s", overlay))
        listed = "".join(f"  - {k8s / 'components' / c}\n" for c in components)
        overlay.joinpath("kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"namespace: resilient-api\nresources:\n  - {k8s / 'base'}\n"
            + (f"components:\n{listed}" if components else "")
        )
        paths[name] = folder / f"{name}.yaml"
        paths[name].write_text(_render(overlay))
    return paths


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
    # Held to the tested pins, transitive ones included (a static check: no Docker daemon here).
    assert "COPY requirements.txt constraints.txt ./" in text
    assert "-r requirements.txt -c constraints.txt" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests", ".env"} <= set(ignored)


def test_manifests_render_with_every_object(objects: dict[str, dict[str, Any]]) -> None:
    assert set(objects) == {
        "Namespace",
        "ConfigMap",
        "Deployment",
        "Service",
        "NetworkPolicy",
    }
    assert all(
        o["metadata"].get("namespace") == "resilient-api"
        for k, o in objects.items()
        if k != "Namespace"
    )


def test_manifests_are_valid_against_the_kubernetes_schemas(
    rendered: Path, overlays: dict[str, Path], combinations: dict[str, Path]
) -> None:
    validate = _tool("kubernetes-validate")
    # The ServiceMonitor and PrometheusRule are custom resources: kubernetes-validate has no
    # schema for them (a warning, not a failure); everything else is checked strictly.
    for path in (rendered, *overlays.values(), *combinations.values()):
        result = subprocess.run(
            [validate, "--strict", "-k", K8S_VERSION, str(path)], capture_output=True, text=True
        )
        assert result.returncode == 0, path.name + result.stdout + result.stderr


def test_manifests_pass_checkov(
    rendered: Path, overlays: dict[str, Path], combinations: dict[str, Path]
) -> None:
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    paths = (rendered, *overlays.values(), *combinations.values())
    files = [arg for path in paths for arg in ("-f", str(path))]
    result = subprocess.run(
        [_tool("checkov"), *files, "--config-file", str(ROOT / ".checkov.yaml")],
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
    # The probes go to the probe listener, which a busy event loop does not delay.
    probe_port = next(p for p in api["ports"] if p["name"] == "probes")["containerPort"]
    assert int(objects["ConfigMap"]["data"]["APP_PROBE_PORT"]) == probe_port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert api[probe]["httpGet"]["port"] == "probes", probe
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


def test_the_base_runs_one_replica_of_its_in_memory_store(
    objects: dict[str, dict[str, Any]],
) -> None:
    # A per-process store scaled out would serve a different dataset from each replica.
    assert objects["Deployment"]["spec"]["replicas"] == 1
    assert "HorizontalPodAutoscaler" not in objects
    assert objects["ConfigMap"]["data"]["APP_STORE"] == "memory"
    assert "sessionAffinity" not in objects["Service"]["spec"]
    workers = int(objects["ConfigMap"]["data"]["APP_PROCESS_POOL_WORKERS"])
    cpu_limit = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]["resources"][
        "limits"
    ]["cpu"]
    assert workers <= float(cpu_limit)


def test_the_redis_overlay_scales_out_on_one_shared_store(overlays: dict[str, Path]) -> None:
    from app.core.config import load_settings

    found = _objects(overlays["redis"].read_text())
    hpa = found["HorizontalPodAutoscaler"][0]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert found["PodDisruptionBudget"][0]["spec"]["minAvailable"] == 1
    config = found["ConfigMap"][0]["data"]
    assert config["APP_STORE"] == "redis"
    assert "APP_SNAPSHOT_PATH" not in config  # refused with Redis
    secret = yaml.safe_load((ROOT / "k8s" / "secret.example.yaml").read_text())["stringData"]
    values = {k.removeprefix("APP_").lower(): v for k, v in {**config, **secret}.items()}
    values.update(
        jwt_secret_key="Yq3vN8rT1xWm6pLk2Hs9Dz4Bf7Gc0JeA5uR",
        admin_password="a-real-password",
        redis_url="redis://:Zp4xQ7mK2wN9vB3rT6yH@resilient-api-redis:6379/0",
        bcrypt_rounds=12,  # the test environment lowers it; the image keeps the default
    )
    assert load_settings(**values).store == "redis"
    # The example Secret's placeholder Redis password is refused, as its other values are.
    with pytest.raises(SettingsError):
        load_settings(**{**values, "redis_url": secret["APP_REDIS_URL"]})

    redis = found["StatefulSet"][0]
    pod = redis["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["sh", "-c"]
    [script] = container["args"]
    for setting in ("--appendonly yes", "--appendfsync always", "--maxmemory-policy noeviction"):
        assert setting in script
    # The password is read from the environment inside the container, never written into the
    # pod spec (no $(VAR) expansion) or onto redis-server's command line.
    assert "$(REDIS_PASSWORD)" not in script
    assert script.startswith("exec redis-server - ")
    assert 'requirepass "$REDIS_PASSWORD"' in script
    assert container["image"].startswith("redis:7.")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"readinessProbe", "livenessProbe", "resources"} <= set(container)
    assert container["volumeMounts"][0]["mountPath"] == "/data"
    assert redis["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    # Only the app's pods reach Redis, and the app's pods reach it on its port.
    policies = {p["metadata"]["name"]: p["spec"] for p in found["NetworkPolicy"]}
    store = policies["resilient-api-redis"]
    assert store["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "resilient-api"}}}
    ]
    assert store["egress"] == []
    assert policies["resilient-api-to-redis"]["egress"][0]["ports"][0]["port"] == 6379
    # Redis's own labels keep it out of the app's selectors.
    assert redis["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "redis"


def test_config_map_holds_no_secrets_and_valid_settings(objects: dict[str, dict[str, Any]]) -> None:
    from app.core.config import load_settings

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


def test_every_object_and_pod_carries_the_recommended_labels(
    objects: dict[str, dict[str, Any]],
) -> None:
    recommended = {
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
        "app.kubernetes.io/component",
        "app.kubernetes.io/part-of",
        "app.kubernetes.io/managed-by",
    }
    for kind, obj in objects.items():
        assert recommended <= set(obj["metadata"]["labels"]), kind
    deployment = objects["Deployment"]["spec"]
    assert recommended <= set(deployment["template"]["metadata"]["labels"])
    # Selectors stay minimal: a new version must not orphan the old ReplicaSet.
    assert deployment["selector"]["matchLabels"] == {"app.kubernetes.io/name": "resilient-api"}


def test_pods_spread_pull_once_and_request_their_idle_memory(
    objects: dict[str, dict[str, Any]],
) -> None:
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    container = pod["containers"][0]
    assert container["imagePullPolicy"] == "IfNotPresent"
    # Measured idle: 228 MiB for the web process, one worker and the resource tracker.
    assert int(container["resources"]["requests"]["memory"].removesuffix("Mi")) >= 283


def test_the_operator_overlay_brings_monitoring(overlays: dict[str, Path]) -> None:
    found = _objects(overlays["prometheus-operator"].read_text())
    monitor = found["ServiceMonitor"][0]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert found["PrometheusRule"][0]["spec"]["groups"]
    dashboards = [c for c in found["ConfigMap"] if "dashboard.json" in c.get("data", {})]
    assert dashboards[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    scrape = next(
        p for p in found["NetworkPolicy"] if p["metadata"]["name"] == "resilient-api-metrics"
    )
    source = scrape["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
    assert source == {"kubernetes.io/metadata.name": "monitoring"}


def test_the_production_overlay_combines_the_components_with_a_registry_image(
    overlays: dict[str, Path],
) -> None:
    # The combination that failed as two overlays ("may not add resource with an already
    # registered id: Namespace"): components add to one base instead.
    found = _objects(overlays["production"].read_text())
    redis = _objects(overlays["redis"].read_text())
    monitoring = _objects(overlays["prometheus-operator"].read_text())
    assert len(found["Namespace"]) == 1
    for kind in ("StatefulSet", "HorizontalPodAutoscaler"):
        assert len(found[kind]) == len(redis[kind]), kind
    # redis-ha adds the Redis pods' own disruption budget.
    assert len(found["PodDisruptionBudget"]) == len(redis["PodDisruptionBudget"]) + 1
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert len(found[kind]) == len(monitoring[kind]), kind
    # The Ingress's host is one the app accepts, and it routes to the Service's port.
    [ingress] = found["Ingress"]
    [rule] = ingress["spec"]["rules"]
    config_hosts = next(
        c["data"] for c in found["ConfigMap"] if c["metadata"]["name"] == "resilient-api-config"
    )["APP_ALLOWED_HOSTS"].split(",")
    assert rule["host"] in config_hosts
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": "resilient-api",
        "port": {"name": "http"},
    }
    policies = {p["metadata"]["name"] for p in found["NetworkPolicy"]}
    assert policies == {p["metadata"]["name"] for p in redis["NetworkPolicy"]} | {
        p["metadata"]["name"] for p in monitoring["NetworkPolicy"]
    }
    [app] = [d for d in found["Deployment"] if d["metadata"]["name"] == "resilient-api"]
    assert app["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.example.com/resilient-api:0.1.0"
    )
    config = next(
        c["data"] for c in found["ConfigMap"] if c["metadata"]["name"] == "resilient-api-config"
    )
    assert config["APP_STORE"] == "redis"
    assert config["APP_REDIS_MIN_REPLICAS_ACK"] == "1"


def test_redis_ha_runs_three_redis_pods_with_sentinels_the_app_finds(
    combinations: dict[str, Path],
) -> None:
    found = _objects(combinations["redis-ha"].read_text())
    [redis] = found["StatefulSet"]
    pod = redis["spec"]["template"]["spec"]
    assert redis["spec"]["replicas"] == 3
    assert [c["name"] for c in pod["containers"]] == ["redis", "sentinel"]
    # The image is pinned, both containers run locked down, and no pod shares a node.
    for container in pod["containers"]:
        assert container["image"] == "redis:7.4.2-alpine"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert "args" not in container, "the start scripts replace the single Redis's args"
    assert pod["securityContext"]["runAsNonRoot"] is True
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
    [budget] = [
        b for b in found["PodDisruptionBudget"] if b["metadata"]["name"] == "resilient-api-redis"
    ]
    assert budget["spec"]["minAvailable"] == 2
    # The scripts the pods run are the ones tests/deploy/test_redis_ha.py runs.
    [scripts] = [c for c in found["ConfigMap"] if "redis-scripts" in c["metadata"]["name"]]
    for name, text in scripts["data"].items():
        assert text == (ROOT / "k8s/components/redis-ha/scripts" / name).read_text()
    # Every sentinel the app is given is one of the pods, on the sentinel port the Service has.
    config = next(
        c["data"] for c in found["ConfigMap"] if c["metadata"]["name"] == "resilient-api-config"
    )
    names = {f"{redis['metadata']['name']}-{i}.{redis['spec']['serviceName']}" for i in range(3)}
    sentinels = config["APP_REDIS_SENTINELS"].split(",")
    assert {s.rsplit(":", 1)[0] for s in sentinels} == names
    [service] = [s for s in found["Service"] if s["metadata"]["name"] == "resilient-api-redis"]
    assert {p["port"] for p in service["spec"]["ports"]} == {6379, 26379}
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert config["APP_REDIS_SENTINEL_MASTER"] == "resilient-api"
    assert all(c["name"] == "sentinel" or "SENTINELS" in {e["name"] for e in c["env"]}
               for c in pod["containers"])  # fmt: skip
    [app] = found["Deployment"]
    env = {e["name"]: e for e in app["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["APP_REDIS_SENTINEL_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == (
        "REDIS_PASSWORD"
    )
    # The settings the app is given are valid for it (it would refuse to start otherwise).
    from app.core.config import load_settings

    values = {k.removeprefix("APP_").lower(): v for k, v in config.items()}
    values.update(
        jwt_secret_key="Yq3vN8rT1xWm6pLk2Hs9Dz4Bf7Gc0JeA5uR",
        admin_password="a-real-password",
        redis_url="redis://:Zp4xQ7mK2wN9vB3rT6yH@resilient-api-redis:6379/0",
        redis_sentinel_password="Zp4xQ7mK2wN9vB3rT6yH",
        bcrypt_rounds=12,
    )
    settings = load_settings(**values)
    assert [f"{host}:{port}" for host, port in settings.redis_sentinels] == sentinels


def test_the_local_overlay_runs_one_local_image(overlays: dict[str, Path]) -> None:
    found = _objects(overlays["local"].read_text())
    assert "HorizontalPodAutoscaler" not in found
    deployment = found["Deployment"][0]["spec"]
    container = deployment["template"]["spec"]["containers"][0]
    assert deployment["replicas"] == 1
    assert (container["image"], container["imagePullPolicy"]) == ("resilient-api:local", "Never")


def test_the_redis_start_script_gives_redis_its_password_on_stdin(tmp_path: Path) -> None:
    """The StatefulSet's start script, run by a real shell and redis-server (loopback, a
    temporary directory for /data): Redis asks for the password, and its command line holds
    none."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed (Debian package redis-server); CI installs it")
    rendered = subprocess.run(
        [_tool("kubectl"), "kustomize", str(ROOT / "k8s" / "overlays" / "redis")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    [redis] = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "StatefulSet"]
    [script] = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    port = free_port()
    script = script.replace("--dir /data", f"--dir {tmp_path} --port {port}")
    password = "pw with spaces and $dollar"
    server = subprocess.Popen(
        [shutil.which("sh") or "/bin/sh", "-c", script],
        env={**os.environ, "REDIS_PASSWORD": password},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis_client.Redis(port=port, password=password, socket_timeout=1)
        for _ in range(100):
            try:
                assert client.ping()
                break
            except redis_client.ConnectionError:
                time.sleep(0.05)
        with pytest.raises(redis_client.AuthenticationError):
            redis_client.Redis(port=port, socket_timeout=1).ping()
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes()
        assert password.encode() not in cmdline
        client.close()
    finally:
        server.terminate()
        server.wait(10)


def test_the_tracing_component_points_the_app_at_a_collector_it_may_reach(
    combinations: dict[str, Path],
) -> None:
    found = _objects(combinations["redis-ha+monitoring+ingress+tracing"].read_text())
    config = next(c for c in found["ConfigMap"] if c["metadata"]["name"] == "resilient-api-config")
    data = config["data"]
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"].endswith(":4318")
    assert data["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert 0 < float(data["OTEL_TRACES_SAMPLER_ARG"]) <= 1
    egress = [
        rule for policy in found["NetworkPolicy"] for rule in policy["spec"].get("egress", [])
    ]
    assert any(port["port"] == 4318 for rule in egress for port in rule.get("ports", []))
    # The rest of the combination is untouched: still Redis with Sentinel behind the app.
    assert "APP_REDIS_SENTINELS" in data
