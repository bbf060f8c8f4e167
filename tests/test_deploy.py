"""The deployment files of deploy/: Dockerfiles, compose, Kubernetes, Prometheus, Grafana.

No Docker engine or cluster is needed: the files are parsed and checked against
each other and against the code they deploy (the port, the health endpoint, the
config the server loads, the metrics it really exports). Two checks run real
processes: the image's HEALTHCHECK command against a served app, and the
image's command (``llmrouter serve deploy/router.yaml``) in front of llm-katan.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _fixtures.serve import free_port, serve_app, wait_healthy
from fastapi.testclient import TestClient
from langchain_core.language_models import FakeListChatModel
from prometheus_client.parser import text_string_to_metric_families

import llmrouter
from llmrouter.serve import create_app
from llmrouter.state import RedisState
from llmrouter.testing import KatanServer, RedisServer

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "llmrouter.json"

PORT = 8080
CONFIG_IN_IMAGE = "/etc/llmrouter/router.yaml"
STATE_DIR = "/var/lib/llmrouter"
COMMAND = ["llmrouter", "serve", CONFIG_IN_IMAGE, "--host", "0.0.0.0", "--port", str(PORT)]
ENV = {
    "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
    "OPENAI_API_KEY": "sk-deploy-test",
    "LLMROUTER_API_KEY": "sk-llmrouter-deploy-0123456789",
}
"""The variables deploy/router.yaml requires (it names no others without a fallback)."""

YAML_FILES = sorted(p for ext in ("*.yml", "*.yaml") for p in DEPLOY.rglob(ext))
DOCKERFILES = [DEPLOY / "Dockerfile", DEPLOY / "Dockerfile.cuda"]


# ------------------------------------------------------------ readers


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def k8s(name: str) -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(K8S / name)
    return document


def compose() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(DEPLOY / "docker-compose.yml")
    return document


def container() -> dict[str, Any]:
    spec = k8s("deployment.yaml")["spec"]["template"]["spec"]
    (main,) = spec["containers"]
    result: dict[str, Any] = main
    return result


def instructions(path: Path) -> list[tuple[str, str]]:
    """A Dockerfile's instructions, ``(KEYWORD, arguments)``, continuations joined."""
    joined: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, f"{path.name}: ends inside a continued line"
    result = []
    for text in joined:
        keyword, _, args = text.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def args_of(path: Path, keyword: str) -> list[str]:
    return [args for key, args in instructions(path) if key == keyword]


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form ENTRYPOINT, CMD or HEALTHCHECK CMD."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def healthcheck(path: Path) -> list[str]:
    (args,) = args_of(path, "HEALTHCHECK")
    options, _, command = args.partition("CMD ")
    assert options.strip().startswith("--"), "HEALTHCHECK options, then CMD"
    return exec_form(command)


def health_url(command: list[str]) -> str:
    found = re.findall(r"https?://[^'\"\s]+", " ".join(command))
    assert len(found) == 1, command
    return str(found[0])


def required_env(config_text: str) -> set[str]:
    """The ``${NAME}`` references of a config that have no ``:-fallback``."""
    return {m.group(1) for m in re.finditer(r"\$\{(\w+)\}", config_text)}


def container_port(mapping: str) -> int:
    """The container side of a compose port mapping, ``"[ip:]host:container[/proto]"``."""
    return int(mapping.split("/")[0].rsplit(":", 1)[-1])


def compose_mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """A compose service's volumes: container path -> (source, options)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *options = volume.split(":")
        mounts[target] = (source, ":".join(options))
    return mounts


# ------------------------------------------------------------ PromQL


_AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip
_FUNCTIONS = _AGGREGATIONS | {
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max",
    "clamp_min", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta",
    "deriv", "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction",
    "histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum",
    "holt_winters", "double_exponential_smoothing", "hour", "idelta", "increase", "irate",
    "label_join", "label_replace", "ln", "log2", "log10", "minute", "month",
    "predict_linear", "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc",
    "sort_by_label", "sort_by_label_desc", "sqrt", "time", "timestamp", "vector", "year",
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
    "quantile_over_time", "stddev_over_time", "stdvar_over_time", "last_over_time",
    "present_over_time", "mad_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "cos", "cosh", "sin", "sinh", "tan", "tanh", "deg", "pi", "rad",
}  # fmt: skip
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}


def promql_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana variables allowed).

    Strings, label matchers, ranges, ``by``/``without``/``on``/``ignoring``
    label lists and ``$variables`` are dropped; what remains is functions,
    keywords, numbers and metric names. A name followed by ``(`` must be a
    PromQL function, so a misspelt function is an error, not a metric.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\$\{[^}]*\}|\$\w+", "", text)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text, flags=re.I
    )
    text = re.sub(r"\b(group_left|group_right)\b", " ", text, flags=re.I)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call:
            assert word.lower() in _FUNCTIONS, f"{word}(: not a PromQL function in {expr!r}"
        elif word.lower() not in _KEYWORDS:
            names.add(word)
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    """Every PromQL expression of the dashboard: (where, expression)."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            queries.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        query = query["query"] if isinstance(query, dict) else query
        values = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query)
        if values:
            queries.append((f"variable {variable['name']}", values.group(1)))
        elif re.fullmatch(r"\s*query_result\((.*)\)\s*", query):
            queries.append((f"variable {variable['name']}", query.strip()[13:-1]))
        else:
            raise AssertionError(f"variable {variable['name']}: unexpected query {query!r}")
    return queries


_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every series name a server's /metrics exposes -> its metric family.

    A real app over a fake model answers one request, then is scraped.
    """
    spend_db = tmp_path_factory.mktemp("metrics") / "spend.sqlite"
    spec = llmrouter.ModelSpec(
        name="fake", model=FakeListChatModel(responses=["Hi!"]), input_cost=1, output_cost=2
    )
    router = llmrouter.CostAwareRouter(
        models=[spec], budget=llmrouter.Budget(usd=1, per="day"), spend_db=str(spend_db)
    )
    client = TestClient(create_app({"support-router": router}, {"fake": spec}))
    body = {"model": "support-router", "messages": [{"role": "user", "content": "hi"}]}
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    scrape = client.get("/metrics")
    assert scrape.status_code == 200
    series: dict[str, str] = {}
    for family in text_string_to_metric_families(scrape.text):
        for suffix in _SUFFIXES.get(family.type, ("",)):
            series[family.name + suffix] = family.name
        for sample in family.samples:
            series[sample.name] = family.name
    return series


# ------------------------------------------------------------ every file parses


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    assert documents and all(isinstance(d, dict) for d in documents)


def test_the_expected_files_exist() -> None:
    names = {str(p.relative_to(DEPLOY)) for p in YAML_FILES}
    assert {
        "router.yaml",
        "docker-compose.yml",
        "prometheus/prometheus.yml",
        "k8s/deployment.yaml",
        "k8s/service.yaml",
        "k8s/configmap.yaml",
        "k8s/secret.example.yaml",
        "k8s/redis.yaml",
        "k8s/kustomization.yaml",
    } <= names
    assert json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    for dockerfile in DOCKERFILES:
        assert dockerfile.is_file() and Path(f"{dockerfile}.dockerignore").is_file()


# ------------------------------------------------------------ Dockerfiles


def test_the_cpu_image_installs_the_cpu_torch_pinned_as_setup_sh_then_the_package() -> None:
    path = DEPLOY / "Dockerfile"
    assert args_of(path, "FROM") == ["python:3.11-slim"]
    pin = re.search(r'"(torch==[\w.+]+)"', (ROOT / "scripts" / "setup.sh").read_text())
    assert pin and pin.group(1) == "torch==2.13.0"
    runs = args_of(path, "RUN")
    torch = [i for i, r in enumerate(runs) if "pip install" in r and pin.group(1) in r]
    package = [i for i, r in enumerate(runs) if re.search(r"pip install [\"']?\.\[serve\]", r)]
    assert len(torch) == 1 and len(package) == 1, runs
    assert torch[0] < package[0], "torch must be installed before the package"
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs[torch[0]]
    assert "torch" not in runs[package[0]].replace(".[serve]", "")  # the range stays the package's


def test_the_cuda_image_installs_the_same_torch_first() -> None:
    path = DEPLOY / "Dockerfile.cuda"
    steps = instructions(path)
    base = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for k, a in steps if k == "ARG")))
    (image,) = args_of(path, "FROM")
    default = base[image.strip("${}")]  # FROM ${CUDA_IMAGE}: a build arg, with a default
    assert default.startswith("nvidia/cuda:") and "runtime" in default
    runs = args_of(path, "RUN")
    torch = next(i for i, r in enumerate(runs) if '"torch==2.13.0"' in r)
    package = next(i for i, r in enumerate(runs) if ".[serve]" in r)
    assert torch < package
    assert "/whl/cpu" not in runs[torch]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_the_image_runs_llmrouter_serve_on_the_exposed_port(path: Path) -> None:
    (entrypoint,) = args_of(path, "ENTRYPOINT")
    (cmd,) = args_of(path, "CMD")
    assert exec_form(entrypoint) + exec_form(cmd) == COMMAND
    assert args_of(path, "EXPOSE") == [str(PORT)]
    copied = [args.split() for args in args_of(path, "COPY")]
    assert ["deploy/router.yaml", CONFIG_IN_IMAGE] in copied
    assert any("src" in c[:-1] for c in copied) and any("pyproject.toml" in c for c in copied)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_the_image_runs_as_a_numeric_non_root_user_the_pod_also_uses(path: Path) -> None:
    (user,) = args_of(path, "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or gid.isdigit())
    pod = k8s("deployment.yaml")["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == int(uid)
    assert f"chown {uid}:{gid or uid} {STATE_DIR}" in " ".join(args_of(path, "RUN"))


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_the_health_check_asks_health_on_the_port(path: Path) -> None:
    command = healthcheck(path)
    assert command[:2] == ["python", "-c"]
    assert health_url(command) == f"http://127.0.0.1:{PORT}/health"
    assert "curl" not in " ".join(command) and "wget" not in " ".join(command)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_the_dockerignore_keeps_what_the_image_copies(path: Path) -> None:
    lines = [
        line.strip()
        for line in Path(f"{path}.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # everything else (.venv, models, .git) stays out of the context
    kept = {line[1:] for line in lines if line.startswith("!")}
    for args in args_of(path, "COPY"):
        *sources, _ = args.split()
        for source in sources:
            assert source.rstrip("/") in kept, f"{source} is copied but ignored"
    # setuptools reads the readme named in pyproject.toml: it must be in the image
    assert "README.md" in kept


def test_the_health_check_command_passes_on_a_healthy_server_and_fails_without_one() -> None:
    command = healthcheck(DEPLOY / "Dockerfile")
    spec = llmrouter.ModelSpec(name="fake", model=FakeListChatModel(responses=["Hi!"]))
    app = create_app({"main": llmrouter.ModelRouter(models=[spec], default="fake")})
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["HTTP_PROXY"] = "http://127.0.0.1:9"  # the command must not go through a proxy
    with serve_app(app) as served:
        url = served.url + "/health"
        live = [c.replace(f"http://127.0.0.1:{PORT}/health", url) for c in command]
        ok = subprocess.run([sys.executable, *live[1:]], env=env, capture_output=True, timeout=30)
        assert ok.returncode == 0, ok.stderr.decode()
        missing = [c.replace("/health", "/nothing-here") for c in live]
        not_found = subprocess.run([sys.executable, *missing[1:]], env=env, capture_output=True)
        assert not_found.returncode != 0
    closed = [c.replace(str(PORT), str(free_port())) for c in command]
    down = subprocess.run([sys.executable, *closed[1:]], env=env, capture_output=True, timeout=30)
    assert down.returncode != 0


# ------------------------------------------------------------ the server config


@pytest.fixture
def deploy_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    monkeypatch.setenv("LLMROUTER_STATE", f"sqlite:///{tmp_path}/state.db")  # the volume
    return tmp_path


def test_the_server_config_loads_and_builds(deploy_env: Path) -> None:
    built = llmrouter.load_config(DEPLOY / "router.yaml").build()
    assert built.default == "support-router"
    router = built.routers["support-router"]
    assert isinstance(router, llmrouter.CostAwareRouter)
    assert [s.name for s in router.models] == ["remote"]
    (budget,) = router.budget if isinstance(router.budget, list) else [router.budget]
    assert budget is not None and budget.per == "day" and budget.usd > 0
    assert router.state == f"sqlite:///{deploy_env}/state.db" and router.spend_db is None
    assert built.models["remote"].model.model_name == "gpt-4o-mini"
    serve = built.serve
    assert serve.host == "0.0.0.0" and serve.port == PORT
    (key,) = serve.keys
    assert key.key.get_secret_value() == ENV["LLMROUTER_API_KEY"] and key.name == "default"


def test_the_server_config_keeps_state_on_the_volume_and_secrets_in_the_environment() -> None:
    text = (DEPLOY / "router.yaml").read_text()
    raw = yaml.safe_load(text)
    assert raw["state"] == f"${{LLMROUTER_STATE:-sqlite:///{STATE_DIR}/state.db}}"
    assert "spend_db" not in raw["routers"]["support-router"]  # the state holds the ledger
    assert raw["models"]["remote"]["model"] == "${OPENAI_MODEL:-gpt-4o-mini}"
    assert raw["models"]["remote"]["api_key"] == "${OPENAI_API_KEY}"
    assert raw["serve"]["keys"] == [{"key": "${LLMROUTER_API_KEY}", "name": "default"}]
    assert required_env(text) == set(ENV)


def test_a_missing_variable_stops_the_config_at_load(
    deploy_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLMROUTER_API_KEY")
    with pytest.raises(llmrouter.ConfigurationError, match="LLMROUTER_API_KEY"):
        llmrouter.load_config(DEPLOY / "router.yaml").build()


def test_the_configmap_holds_deploy_router_yaml_exactly() -> None:
    configmap = k8s("configmap.yaml")
    assert configmap["kind"] == "ConfigMap"
    assert configmap["data"] == {"router.yaml": (DEPLOY / "router.yaml").read_text()}


# ------------------------------------------------------------ ports and probes agree


def test_every_file_agrees_on_port_8080() -> None:
    assert load_yaml(DEPLOY / "router.yaml")["serve"]["port"] == PORT
    service = compose()["services"]["llmrouter"]
    assert [container_port(p) for p in service["ports"]] == [PORT]
    main = container()
    assert [p["containerPort"] for p in main["ports"]] == [PORT]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if probe in main:
            assert main[probe]["httpGet"]["port"] in (PORT, main["ports"][0].get("name"))
    svc = k8s("service.yaml")
    (port,) = svc["spec"]["ports"]
    assert port["targetPort"] == PORT and port["port"] == 80
    assert svc["metadata"]["annotations"]["prometheus.io/port"] == str(PORT)


def test_the_probes_and_health_checks_use_health() -> None:
    main = container()
    assert {"readinessProbe", "livenessProbe"} <= set(main)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if probe in main:
            assert main[probe]["httpGet"]["path"] == "/health"
    test = compose()["services"]["llmrouter"]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1:] == healthcheck(DEPLOY / "Dockerfile")


def test_pods_and_containers_outlive_the_graceful_shutdown() -> None:
    shutdown = load_yaml(DEPLOY / "router.yaml")["serve"]["shutdown_timeout"]
    assert shutdown == 30
    pod = k8s("deployment.yaml")["spec"]["template"]["spec"]
    pre_stop = container().get("lifecycle", {}).get("preStop", {}).get("exec", {})
    pause = int(pre_stop["command"][1]) if pre_stop.get("command", [""])[0] == "sleep" else 0
    assert pod["terminationGracePeriodSeconds"] > shutdown + pause
    grace = compose()["services"]["llmrouter"]["stop_grace_period"]
    assert int(grace.rstrip("s")) > shutdown


# ------------------------------------------------------------ Kubernetes


def test_the_deployment() -> None:
    deployment = k8s("deployment.yaml")
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 2
    template = deployment["spec"]["template"]
    labels = deployment["spec"]["selector"]["matchLabels"]
    assert labels.items() <= template["metadata"]["labels"].items()
    main = container()
    assert main["image"] == "ghcr.io/your-org/llmrouter:latest"
    assert "command" not in main and "args" not in main  # the image's command
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(main["resources"][kind])
    security = main["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]


def test_the_deployment_mounts_the_configmap_where_the_command_reads_it() -> None:
    volumes = {v["name"]: v for v in k8s("deployment.yaml")["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in container()["volumeMounts"]}
    folder, _, filename = CONFIG_IN_IMAGE.rpartition("/")
    config = mounts[folder]
    assert config["readOnly"] is True
    configmap = k8s("configmap.yaml")
    assert volumes[config["name"]]["configMap"]["name"] == configmap["metadata"]["name"]
    assert filename in configmap["data"]
    assert STATE_DIR in mounts and "emptyDir" in volumes[mounts[STATE_DIR]["name"]]
    if container()["securityContext"].get("readOnlyRootFilesystem"):
        assert "/tmp" in mounts  # HF_HOME and Python's temporary files


def test_the_deployment_provides_every_variable_the_config_requires() -> None:
    env = {e["name"]: e for e in container()["env"]}
    assert set(ENV) <= set(env)
    secret = load_yaml(K8S / "secret.example.yaml")
    assert secret["kind"] == "Secret"
    for name in ("OPENAI_API_KEY", "LLMROUTER_API_KEY"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"]
    example = (DEPLOY / ".env.example").read_text()
    assert set(ENV) <= set(re.findall(r"^(\w+)=", example, flags=re.M))


def test_the_replicas_share_state_on_a_persistent_redis() -> None:
    service, statefulset = yaml.safe_load_all((K8S / "redis.yaml").read_text())
    assert (service["kind"], statefulset["kind"]) == ("Service", "StatefulSet")
    env = {e["name"]: e.get("value") for e in container()["env"]}
    name, port = service["metadata"]["name"], service["spec"]["ports"][0]["port"]
    assert env["LLMROUTER_STATE"] == f"redis://{name}:{port}/0"
    pod = statefulset["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (redis,) = pod["spec"]["containers"]
    args = redis["args"]
    assert args[args.index("--appendonly") + 1] == "yes"  # spend survives a restart
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert {m["name"]: m["mountPath"] for m in redis["volumeMounts"]} == {
        claim["metadata"]["name"]: "/data"
    }
    assert redis["securityContext"]["allowPrivilegeEscalation"] is False
    # and compose runs the same: persistent, and the server points at it
    services = compose()["services"]
    assert services["llmrouter"]["environment"]["LLMROUTER_STATE"] == "redis://redis:6379/0"
    command = services["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert compose_mounts(services["redis"])["/data"][0] in compose()["volumes"]


def test_the_service_selects_the_pods_and_is_scraped() -> None:
    svc = k8s("service.yaml")
    assert svc["kind"] == "Service" and svc["spec"]["type"] == "ClusterIP"
    pod_labels = k8s("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    annotations = svc["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = k8s("kustomization.yaml")
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests - {"secret.example.yaml"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl")
def test_kubectl_kustomize_renders_the_manifests() -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    documents = list(yaml.safe_load_all(out.stdout))
    kinds = sorted(d["kind"] for d in documents)
    assert kinds == ["ConfigMap", "Deployment", "Service", "Service", "StatefulSet"]
    configmap = next(d for d in documents if d["kind"] == "ConfigMap")
    assert configmap["data"]["router.yaml"] == (DEPLOY / "router.yaml").read_text()


# ------------------------------------------------------------ compose, Prometheus, Grafana


def test_compose_builds_the_image_and_mounts_the_config_read_only() -> None:
    document = compose()
    assert set(document["services"]) == {"llmrouter", "redis", "prometheus", "grafana"}
    service = document["services"]["llmrouter"]
    context = (DEPLOY / service["build"]["context"]).resolve()
    assert context == ROOT
    assert (context / service["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    mounts = compose_mounts(service)
    assert mounts[CONFIG_IN_IMAGE] == ("./router.yaml", "ro")
    assert mounts[STATE_DIR][0] in document["volumes"]  # a named volume
    assert (DEPLOY / service["env_file"]).name == ".env"
    assert (DEPLOY / ".env.example").is_file()
    assert document["services"]["redis"]["image"] == "redis:7-alpine"
    for name, svc in document["services"].items():
        for target, (source, _) in compose_mounts(svc).items():
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} -> {target}"


def test_prometheus_scrapes_the_compose_service_that_runs_the_server() -> None:
    (job,) = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")["scrape_configs"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (static,) = job["static_configs"]
    (target,) = static["targets"]
    host, _, port = target.partition(":")
    services = compose()["services"]
    assert services[host]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert int(port) == container_port(services[host]["ports"][0])
    mounts = compose_mounts(services["prometheus"])
    assert mounts["/etc/prometheus/prometheus.yml"] == ("./prometheus/prometheus.yml", "ro")


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards_folder() -> None:
    services = compose()["services"]
    mounts = compose_mounts(services["grafana"])
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert mounts["/etc/grafana/provisioning"][0] == "./grafana/provisioning"
    (datasource,) = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["type"] == "prometheus"
    address = re.fullmatch(r"http://([\w-]+):(\d+)", datasource["url"])
    assert address, datasource["url"]
    host, port = address.groups()
    assert host in services and "prometheus" in services[host]["image"]
    assert int(port) == container_port(services[host]["ports"][0])
    (provider,) = load_yaml(provisioning / "dashboards" / "llmrouter.yml")["providers"]
    folder = provider["options"]["path"]
    assert mounts[folder][0] == "./grafana/dashboards"
    assert DASHBOARD.parent == (DEPLOY / mounts[folder][0]).resolve()


def test_the_dashboard_is_grafana_json_over_a_prometheus_datasource_variable() -> None:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert 36 <= board["schemaVersion"] <= 41 and board["uid"] == "llmrouter"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    uid = "${datasource}"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid and target["expr"].strip()
    titles = " | ".join(p["title"].lower() for p in board["panels"])
    for words in (
        "request rate",
        "error rate",
        "p99",
        "first token",
        "tokens per second",
        "cost",
        "retries",
        "fallbacks",
        "breaker",
        "budget",
    ):
        assert words in titles


def test_the_dashboard_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_the_promql_reader_finds_metric_names_and_only_them() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, router) (rate(a_bucket{router=~"$router",'
        'x="rate(b)"}[$__rate_interval]))) / on (router) group_left sum(c_total offset 5m)'
        " * 3600 > bool 1e3"
    )
    assert promql_metrics(expr) == {"a_bucket", "c_total"}
    assert promql_metrics("max without (instance) (up) or vector(0)") == {"up"}
    with pytest.raises(AssertionError, match="not a PromQL function"):
        promql_metrics("rat(a_total[5m])")


def test_the_dashboard_only_queries_metrics_the_server_exports(exported: dict[str, str]) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 10
    unknown = {
        f"{where}: {name}"
        for where, expr in queries
        for name in promql_metrics(expr)
        if name not in exported
    }
    assert not unknown, f"not exported by the server: {sorted(unknown)}"


def test_the_dashboard_shows_every_metric_family_the_server_exports(
    exported: dict[str, str],
) -> None:
    families = set(exported.values())
    assert "llmrouter_request_duration_seconds" in families
    used = {exported[n] for _, expr in dashboard_queries() for n in promql_metrics(expr)}
    assert families - used == set()
    board = DASHBOARD.read_text(encoding="utf-8")
    assert "histogram_quantile" in board and "llmrouter_request_duration_seconds_bucket" in board


# ------------------------------------------------------------ the image's command, for real


ServeDeploy = Callable[[str], tuple[str, str]]


@pytest.fixture
def serve_deploy(tmp_path: Path, katan_server: KatanServer) -> Iterator[ServeDeploy]:
    """Start ``llmrouter serve deploy/router.yaml`` as the image runs it (another host
    and port), in front of llm-katan, with ``LLMROUTER_STATE`` set to the state URL
    given: returns (server URL, API key). Each is stopped with SIGTERM at the end and
    must exit 0 within ``serve.shutdown_timeout``, as a pod must."""
    llmrouter_bin = Path(sys.executable).with_name("llmrouter")
    assert llmrouter_bin.exists(), "the llmrouter console script"
    started: list[tuple[subprocess.Popen[bytes], Any]] = []

    def serve(state: str) -> tuple[str, str]:
        port = free_port()
        command = [str(llmrouter_bin), *COMMAND[1:]]
        command[command.index(CONFIG_IN_IMAGE)] = str(DEPLOY / "router.yaml")
        command[command.index("0.0.0.0")] = "127.0.0.1"
        command[command.index(str(PORT))] = str(port)
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.update(ENV)
        env.update(
            OPENAI_BASE_URL=katan_server.base_url,
            OPENAI_API_KEY=katan_server.api_key,
            OPENAI_MODEL=katan_server.model,
            LLMROUTER_STATE=state,
        )
        log = (tmp_path / f"serve-{port}.log").open("w+")
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        started.append((process, log))
        url = f"http://127.0.0.1:{port}"
        if not wait_healthy(url, 60, alive=lambda: process.poll() is None):
            log.seek(0)
            raise AssertionError(f"llmrouter serve did not start:\n{log.read()}")
        return url, ENV["LLMROUTER_API_KEY"]

    try:
        yield serve
        for process, _ in started:
            process.send_signal(signal.SIGTERM)
        for process, _ in started:
            assert process.wait(timeout=40) == 0  # a clean stop
    finally:
        for process, log in started:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()


def _post(url: str, body: dict[str, Any], key: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _metrics(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url + "/metrics", timeout=10) as response:
        return str(response.read().decode())


def test_the_image_command_serves_the_deploy_config(
    serve_deploy: ServeDeploy, tmp_path: Path
) -> None:
    url, key = serve_deploy(f"sqlite:///{tmp_path}/state.db")  # a lone container
    body = {"model": "support-router", "messages": [{"role": "user", "content": "ping deploy"}]}
    status, refused = _post(url + "/v1/chat/completions", body, None)
    assert status == 401 and refused["error"]["code"]
    status, reply = _post(url + "/v1/chat/completions", body, key)
    assert status == 200, reply
    assert "ping deploy" in reply["choices"][0]["message"]["content"]  # llm-katan echoes
    assert reply["route"]["model"] == "remote"
    assert (tmp_path / "state.db").exists()  # the ledger on the state folder
    metrics = _metrics(url)
    assert 'llmrouter_requests_total{model="remote",router="support-router",status="ok"}' in (
        metrics
    )


def test_two_replicas_of_the_deploy_config_share_one_budget_through_redis(
    serve_deploy: ServeDeploy, redis_server: RedisServer
) -> None:
    """What compose and Kubernetes run: replicas with LLMROUTER_STATE on one Redis.
    Spend settled by one replica is what the other sees left of the day's budget."""
    state = redis_server.url.rsplit("/", 1)[0] + "/5"  # a database of its own
    RedisState(state).client.flushdb()
    (one, key), (two, _) = serve_deploy(state), serve_deploy(state)
    body = {"model": "support-router", "messages": [{"role": "user", "content": "x" * 400}]}
    for replica in (one, two, one):
        status, reply = _post(replica + "/v1/chat/completions", body, key)
        assert status == 200, reply
    left = [budget_left(_metrics(replica)) for replica in (one, two)]
    assert left[0] == left[1] < 5.0  # both see all three calls
    settled = [r for r in RedisState(state).ledger().rows() if r["state"] == "settled"]
    assert len(settled) == 3 and 5.0 - left[0] == pytest.approx(sum(r["usd"] for r in settled))


def budget_left(metrics: str) -> float:
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "llmrouter_budget_remaining_usd":
                return float(sample.value)
    raise AssertionError("no budget gauge in /metrics")
