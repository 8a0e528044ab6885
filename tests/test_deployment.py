"""The deployment files agree with the code: compose, Dockerfile, .env.example.

There is no Docker engine in the test environment. When the Compose v2 client
is installed, ``docker compose config`` validates the file (it needs no
engine); the structural checks below run either way on the YAML with
Compose's own variable interpolation, so a service renamed, a healthcheck
dropped or a ``GENREC_*`` variable the settings class does not know (pydantic
settings ignore unknown ones silently — a typo would just not apply) fails
here instead of at 3 a.m.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from app.core.config import Settings

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
CONSTRAINTS = REPO / "constraints.txt"
ENV_EXAMPLE = REPO / ".env.example"
PROMETHEUS_FILE = REPO / "deploy" / "prometheus.yml"

TOKEN_VAR = "GENREC_ADMIN_TOKEN"
GENREC_SERVICES = ("migrate", "init-model", "api", "worker", "api-gpu", "worker-gpu")
API_SERVICES = ("api", "api-gpu")
WORKER_SERVICES = ("worker", "worker-gpu")
GPU_SERVICES = ("api-gpu", "worker-gpu")
SETTING_NAMES = {f"GENREC_{name.upper()}" for name in Settings.model_fields}

# ---------------------------------------------------------------------------
# Compose's variable interpolation (the subset of the spec the file may use)
# ---------------------------------------------------------------------------

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    """A ``${VAR:?message}`` whose variable is unset (or empty)."""


def interpolate(text: str, env: dict[str, str]) -> str:
    """Expand ``$VAR``, ``${VAR}``, ``${VAR:-d}``, ``${VAR-d}``, ``${VAR:?m}``, ``${VAR?m}``, ``$$``."""

    def expand(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        missing = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return arg if missing else str(value)
        if op in (":?", "?"):
            if missing:
                raise MissingVariable(f"{name}: {arg}")
            return str(value)
        return value or ""

    return _VARIABLE.sub(expand, text)


def interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    """``interpolate`` every string of a parsed compose document (keys stay as written)."""
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(value, env) for value in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def raw_compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict), "docker-compose.yml must be a mapping"
    return document


def compose(**env: str) -> dict[str, Any]:
    """The compose document as the engine would see it with only ``env`` set."""
    return interpolate_tree(raw_compose(), {TOKEN_VAR: "test-token", **env})


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict (compose allows a mapping or KEY=VALUE list)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def container_environment(service: dict[str, Any], dotenv: dict[str, str]) -> dict[str, str]:
    """What a container's process sees when ``.env`` beside the compose file holds
    ``dotenv``: its ``env_file`` entries naming ``.env``, overridden by ``environment``
    (Compose's precedence)."""
    env: dict[str, str] = {}
    for entry in service.get("env_file") or []:
        path = entry if isinstance(entry, str) else entry["path"]
        if path in (".env", "./.env"):
            env.update(dotenv)
    return env | environment(service)


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """target path -> source of each short-syntax volume."""
    result = {}
    for volume in service.get("volumes") or []:
        source, target = volume.split(":")[:2]
        result[target] = source
    return result


@pytest.fixture
def clean_genrec_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No GENREC_* variable from the test run leaks into a Settings() under test."""
    for key in list(os.environ):
        if key.startswith("GENREC_"):
            monkeypatch.delenv(key)
    yield monkeypatch


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings() as a process whose environment is ``env`` would build them."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        return Settings(_env_file=None)  # type: ignore[call-arg]
    finally:
        for key in env:
            monkeypatch.delenv(key)


# ---------------------------------------------------------------------------
# The compose file as a whole
# ---------------------------------------------------------------------------


def _compose_v2_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, timeout=30
    )
    return probe.returncode == 0


def _docker_compose_config(tmp_path: Path, token: str | None) -> subprocess.CompletedProcess[str]:
    """``docker compose config -q`` with an empty env file and only ``token`` set."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    env = {k: v for k, v in os.environ.items() if k != TOKEN_VAR}
    if token is not None:
        env[TOKEN_VAR] = token
    return subprocess.run(
        [
            *("docker", "compose", "--env-file", str(env_file), "-f", str(COMPOSE_FILE)),
            *("--profile", "gpu", "--profile", "monitoring", "config", "-q"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )


def test_compose_file_is_valid_and_needs_the_admin_token(tmp_path: Path) -> None:
    """Compose v2 validates it where installed; else the interpolation is checked here."""
    if _compose_v2_available():
        ok = _docker_compose_config(tmp_path, token="test-token")
        assert ok.returncode == 0, ok.stderr
        refused = _docker_compose_config(tmp_path, token=None)
        assert refused.returncode != 0
        assert TOKEN_VAR in refused.stderr
    else:
        document = compose()
        top_level = {key for key in document if not key.startswith("x-")}
        assert top_level <= {"name", "services", "volumes", "networks", "secrets", "configs"}
        assert document["services"], "no services"
    # Safe defaults: every variable but the admin token has one, so an unset
    # variable never turns silently into an empty value.
    uses = re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?", COMPOSE_FILE.read_text())
    assert uses
    for name, op in uses:
        expected = ":?" if name == TOKEN_VAR else ":-"
        assert op == expected, f"${{{name}}} should use {expected}, uses {op or 'nothing'}"
    with pytest.raises(MissingVariable, match=TOKEN_VAR):
        interpolate_tree(raw_compose(), {})
    with pytest.raises(MissingVariable, match=TOKEN_VAR):
        interpolate_tree(raw_compose(), {TOKEN_VAR: ""})


def test_every_role_is_a_service(services: dict[str, dict[str, Any]]) -> None:
    required = {"postgres", "redis", *GENREC_SERVICES}
    assert required <= set(services), f"missing services: {sorted(required - set(services))}"
    roles = {name: command(services[name])[:1] for name in GENREC_SERVICES}
    assert roles == {
        "migrate": ["migrate"],
        "init-model": ["train"],
        "api": ["serve"],
        "worker": ["worker"],
        "api-gpu": ["serve"],
        "worker-gpu": ["worker"],
    }


def test_genrec_services_share_one_image_build(services: dict[str, dict[str, Any]]) -> None:
    """CPU roles run one image; the GPU roles one built with a CUDA torch index."""
    cpu = {services[name]["image"] for name in ("migrate", "init-model", "api", "worker")}
    gpu = {services[name]["image"] for name in GPU_SERVICES}
    assert len(cpu) == 1 and len(gpu) == 1 and cpu != gpu
    for name in GENREC_SERVICES:
        assert services[name]["build"]["context"] == "."
    index = services["api-gpu"]["build"]["args"]["TORCH_INDEX_URL"]
    assert "/cu" in index, f"the GPU image must install a CUDA torch, got index {index}"
    assert services["api"]["build"]["args"]["TORCH_INDEX_URL"].endswith("/cpu")


def test_postgres_has_a_volume_and_a_readiness_check(
    services: dict[str, dict[str, Any]],
) -> None:
    postgres = services["postgres"]
    assert mounts(postgres).get("/var/lib/postgresql/data") == "pgdata"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert "ports" not in postgres, "the database is reached on the compose network only"


def test_redis_is_a_cache_without_persistence(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    args = command(redis)
    assert args[args.index("--save") + 1] == ""
    assert args[args.index("--appendonly") + 1] == "no"
    assert "volumes" not in redis
    assert "ping" in redis["healthcheck"]["test"]


def test_one_shot_services_run_once_in_order(services: dict[str, dict[str, Any]]) -> None:
    migrate, init = services["migrate"], services["init-model"]
    assert migrate["restart"] == "no" and init["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    args = command(init)
    for flag in ("--promote", "--if-missing"):
        assert flag in args, f"init-model must train with {flag}"
    assert args[args.index("--model") + 1] == "mult-vae"
    assert args[args.index("--data") + 1] == "ml-100k"
    assert mounts(init).get("/data", "").endswith("data")
    assert any(v.endswith(":ro") for v in init["volumes"] if ":/data" in v)


@pytest.mark.parametrize("name", API_SERVICES)
def test_api_is_checked_on_readyz_and_scales(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    api = services[name]
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    assert "container_name" not in api, "a fixed container name forbids --scale"
    args = command(api)
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert int(args[args.index("--workers") + 1]) >= 1
    for port in api["ports"]:
        host = str(port).rsplit(":", 1)[0]
        assert "-" in host, f"{name} publishes one fixed host port {host}: --scale would clash"
    conditions = {dep: spec["condition"] for dep, spec in api["depends_on"].items()}
    assert conditions == {
        "postgres": "service_healthy",
        "redis": "service_healthy",
        "migrate": "service_completed_successfully",
        "init-model": "service_completed_successfully",
    }


@pytest.mark.parametrize("name", WORKER_SERVICES)
def test_workers_scale_and_wait_for_the_schema(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    worker = services[name]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_depends_on_names_real_services(services: dict[str, dict[str, Any]]) -> None:
    allowed = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert spec["condition"] in allowed, f"{name} -> {dep}: {spec['condition']}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck to wait for"


def test_named_volumes_are_declared_and_the_store_is_shared(
    services: dict[str, dict[str, Any]],
) -> None:
    declared = set(compose().get("volumes") or {})
    for name, service in services.items():
        for source in mounts(service).values():
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
    for name in GENREC_SERVICES:
        if name == "migrate":
            continue  # the schema needs no artifacts
        store_dir = environment(services[name])["GENREC_STORE_DIR"]
        assert mounts(services[name]).get(store_dir) == "store", (
            f"{name} must mount the shared store volume at GENREC_STORE_DIR={store_dir}"
        )


def test_gpu_profile_gives_the_nvidia_device(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        devices = (
            service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
        )
        if name in GPU_SERVICES:
            assert service["profiles"] == ["gpu"]
            assert environment(service)["GENREC_DEVICE"] == "cuda"
            assert devices and devices[0]["driver"] == "nvidia"
            assert "gpu" in devices[0]["capabilities"]
        else:
            assert not devices, f"{name} reserves a GPU outside the gpu profile"
    for name in ("postgres", "redis", *GENREC_SERVICES[:4]):
        assert "profiles" not in services[name], f"{name} must start without a profile"


# ---------------------------------------------------------------------------
# Settings: every GENREC_* variable set anywhere is a field, with a valid value
# ---------------------------------------------------------------------------


def dockerfile_env() -> dict[str, str]:
    """KEY=VALUE pairs of the Dockerfile's ENV instructions (continuations joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip().upper().startswith("ENV "):
            for pair in shlex.split(line.strip()[4:], comments=True):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def test_every_genrec_variable_in_compose_is_a_setting(
    services: dict[str, dict[str, Any]], clean_genrec_env: pytest.MonkeyPatch
) -> None:
    raw_names = set(re.findall(r"GENREC_[A-Z0-9_]+", COMPOSE_FILE.read_text()))
    assert raw_names <= SETTING_NAMES, f"not Settings fields: {sorted(raw_names - SETTING_NAMES)}"
    for name in GENREC_SERVICES:
        env = {k: v for k, v in environment(services[name]).items() if k.startswith("GENREC_")}
        settings = settings_from(env, clean_genrec_env)
        assert settings.database_url.startswith("postgresql+psycopg://")
        assert settings.redis_url == "redis://redis:6379/0"
        assert settings.auto_migrate is False, f"{name}: replicas must not race on migrations"
        assert settings.admin_token is not None
        assert settings.admin_token.get_secret_value() == "test-token"


#: Settings compose fixes for every genrec container: whatever .env says, they point at
#: the compose services and volumes (and migrations belong to the migrate service).
WIRED = {
    "GENREC_DATABASE_URL",
    "GENREC_REDIS_URL",
    "GENREC_STORE_DIR",
    "GENREC_DATA_DIR",
    "GENREC_CACHE_DIR",
    "GENREC_AUTO_MIGRATE",
}


def test_every_setting_in_dotenv_reaches_every_genrec_container(
    clean_genrec_env: pytest.MonkeyPatch,
) -> None:
    """.env.example says its GENREC_* values pass through to the containers; compose only
    passed a fixed list (GENREC_MAX_K, GENREC_CACHE_LOCAL_MAX_ENTRIES, ... were dropped).
    The .env is one written for a native run, so its wiring must not win."""
    dotenv = {
        name: value
        for name, value in env_example().items()
        if value and name not in (TOKEN_VAR, "GENREC_REDIS_URL")  # its default is unset
    }
    dotenv |= {
        "GENREC_MAX_K": "77",
        "GENREC_CACHE_LOCAL_MAX_ENTRIES": "5",
        "GENREC_DATASET_BASE_URL": "http://mirror.internal/movielens",
        "GENREC_DEVICE": "cpu",
        "GENREC_REDIS_URL": "redis://127.0.0.1:6379/0",
        "GENREC_DATA_DIR": "/home/me/movielens",
        "GENREC_CACHE_DIR": "/home/me/.cache/genrec",
        TOKEN_VAR: "dotenv-token",
    }
    assert set(dotenv) >= WIRED and len(dotenv) > 40
    services = compose(**dotenv)["services"]  # .env also feeds the file's ${...}
    for name in GENREC_SERVICES:
        entries = services[name].get("env_file")
        assert entries == [{"path": ".env", "required": False}], f"{name}: {entries}"
        env = container_environment(services[name], dotenv)
        for variable, value in dotenv.items():
            if variable in WIRED:
                assert env[variable] == environment(services[name])[variable], (name, variable)
            elif not (variable == "GENREC_DEVICE" and name in GPU_SERVICES):
                assert env[variable] == value, (name, variable)
        settings = settings_from(
            {k: v for k, v in env.items() if k.startswith("GENREC_")}, clean_genrec_env
        )
        assert (settings.max_k, settings.cache_local_max_entries) == (77, 5), name
        assert settings.dataset_base_url == "http://mirror.internal/movielens", name
        assert settings.database_url.startswith("postgresql+psycopg://"), name
        assert settings.redis_url == "redis://redis:6379/0", name
        assert str(settings.store_dir) == "/var/lib/genrec/store", name
        assert (str(settings.data_dir), str(settings.cache_dir)) == ("/data", "/var/cache/genrec")
        assert settings.auto_migrate is False, name
        assert settings.device == ("cuda" if name in GPU_SERVICES else "cpu"), name


def test_every_genrec_variable_in_the_dockerfile_is_a_setting(
    clean_genrec_env: pytest.MonkeyPatch,
) -> None:
    env = {k: v for k, v in dockerfile_env().items() if k.startswith("GENREC_")}
    assert env, "the Dockerfile sets the in-image paths through GENREC_* variables"
    assert set(env) <= SETTING_NAMES, f"not Settings fields: {sorted(set(env) - SETTING_NAMES)}"
    assert TOKEN_VAR not in env, "no secret is baked into the image"
    settings = settings_from(env, clean_genrec_env)
    assert str(settings.store_dir) == env["GENREC_STORE_DIR"]


def env_example() -> dict[str, str]:
    """``GENREC_X=value`` lines of .env.example, commented out or not."""
    found = re.findall(r"^#?\s*(GENREC_[A-Z0-9_]+)=(.*)$", ENV_EXAMPLE.read_text(), re.M)
    return {key: value.strip() for key, value in found}


def test_env_example_documents_every_setting_with_its_default(
    clean_genrec_env: pytest.MonkeyPatch,
) -> None:
    documented = env_example()
    assert set(documented) == SETTING_NAMES, (
        f"undocumented: {sorted(SETTING_NAMES - set(documented))}; "
        f"unknown: {sorted(set(documented) - SETTING_NAMES)} — update .env.example"
    )
    defaults = Settings.model_construct()
    for key, value in documented.items():
        if not value or key == "GENREC_REDIS_URL":  # unset by default; the line shows an example
            continue
        field = key.removeprefix("GENREC_").lower()
        parsed = getattr(settings_from({key: value}, clean_genrec_env), field)
        assert parsed == getattr(defaults, field), f"{key}={value} is not the default"


def test_env_example_lists_the_compose_variables() -> None:
    text = ENV_EXAMPLE.read_text()
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    missing = sorted(name for name in used if not re.search(rf"^#?\s*{name}=", text, re.M))
    assert not missing, f".env.example does not mention {missing}"


# ---------------------------------------------------------------------------
# Image and monitoring files
# ---------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_and_cpu_by_default() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    assert len(stages) >= 2, "builder and runtime stages"
    assert "COPY --from=builder /opt/venv" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    assert "ARG TORCH_VERSION=2.13.0" in text
    copied = re.findall(r"^COPY\s+(?!--from)(.+)$", text, re.M)
    for line in copied:
        for forbidden in ("data", "store", "var", ".venv", "tests"):
            assert forbidden not in line.split()[:-1], f"COPY bakes {forbidden} into the image"


def test_dockerfile_installs_the_dependencies_before_copying_the_source() -> None:
    """A source edit must not invalidate the (slow) dependency layer: the dependencies are
    installed from pyproject.toml alone, the project itself afterwards without them."""
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    deps = next(i for i, line in enumerate(lines) if "pip install -r" in line)
    copies = [i for i, line in enumerate(lines) if re.match(r"COPY\s+(?!--from)", line)]
    before = [lines[i] for i in copies if i < deps]
    assert before == ["COPY pyproject.toml constraints.txt ./"], before
    assert "-c constraints.txt" in lines[deps], "the image installs the locked versions"
    project = next(
        i for i, line in enumerate(lines) if re.search(r"pip install .*\s\.(\s|$)", line)
    )
    assert project > max(copies) and "--no-deps" in lines[project] and "pip check" in lines[project]


def test_constraints_pin_every_dependency_within_pyproject_ranges() -> None:
    """constraints.txt (``make lock``) must name every dependency pyproject.toml declares,
    at a version its range admits: a dependency added or narrowed without re-locking
    would otherwise install unpinned, or not at all under the constraint."""
    pinned = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt line {line!r} is not name==version"
            pinned[canonicalize_name(name)] = Version(version)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name == "torch":  # pinned in pyproject itself; the build (CPU or CUDA) is chosen
            assert name not in pinned, "constraints.txt must leave torch's build to pyproject"
            continue
        assert name in pinned, f"{requirement.name} is not in constraints.txt: run make lock"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {requirement.name}=={pinned[name]} outside {text!r}: "
            "run make lock"
        )


def test_dockerignore_keeps_data_artifacts_and_venvs_out() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in ("**/.venv", "data", "store", "var", ".env", "**/.pytest_cache"):
        assert needed in patterns, f".dockerignore must exclude {needed}"


def test_prometheus_sample_scrapes_every_api_replica(
    services: dict[str, dict[str, Any]],
) -> None:
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name in API_SERVICES:
        container_port = int(str(services[name]["ports"][0]).rsplit(":", 1)[1])
        scraped = [
            job
            for job in jobs.values()
            for sd in job.get("dns_sd_configs", [])
            if sd["names"] == [name] and sd["port"] == container_port
        ]
        assert scraped and scraped[0]["metrics_path"] == "/metrics", f"{name} is not scraped"
    prometheus = services["prometheus"]
    assert mounts(prometheus)["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus.yml"


def test_deployment_guide_documents_every_metric() -> None:
    """docs/deployment.md's /metrics table names every series the service registers."""
    from app.core.metrics import Metrics

    guide = (REPO / "docs" / "deployment.md").read_text()
    names = {family.name for family in Metrics().registry.collect()}
    assert names, "the service registers metrics"
    undocumented = sorted(name for name in names if f"`{name}" not in guide)
    assert not undocumented, f"add these /metrics series to docs/deployment.md: {undocumented}"
