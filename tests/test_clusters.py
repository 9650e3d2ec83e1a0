"""clusters/: every YAML parses and names what `ray up`, `ray job submit` and KubeRay need. Fast; starts no Ray."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTERS = ROOT / "clusters"
LAUNCHERS = {"aws.yaml": "aws", "gcp.yaml": "gcp"}
ALL_YAML = sorted(p.name for p in CLUSTERS.glob("*.y*ml"))


def _docs(name: str) -> list:
    with open(CLUSTERS / name) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def _header(name: str) -> str:
    lines = (CLUSTERS / name).read_text().splitlines()
    return "\n".join(line for line in lines[:40] if line.startswith("#"))


def _ray_cluster_schema() -> dict:
    """Ray's own schema for launcher configs, read from the installed package without importing Ray."""
    package = Path(importlib.util.find_spec("ray").submodule_search_locations[0])
    return json.loads((package / "autoscaler" / "ray-schema.json").read_text())


def test_the_expected_files_are_there():
    assert {"aws.yaml", "gcp.yaml", "rayjob.yaml", "runtime_env.yaml"} <= set(ALL_YAML)
    assert (CLUSTERS / "README.md").is_file()


@pytest.mark.parametrize("name", ALL_YAML)
def test_every_yaml_parses(name):
    docs = _docs(name)
    assert docs and all(isinstance(doc, dict) for doc in docs), name


# --- ray up: aws.yaml, gcp.yaml ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_launcher_config_passes_rays_schema(name):
    import jsonschema

    (config,) = _docs(name)
    jsonschema.validate(config, _ray_cluster_schema())


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_launcher_config_names_what_ray_up_needs(name):
    (config,) = _docs(name)
    assert config["cluster_name"]
    assert isinstance(config["max_workers"], int) and config["max_workers"] >= 1
    provider = config["provider"]
    assert provider["type"] == LAUNCHERS[name]
    assert provider["region"]
    if provider["type"] == "gcp":
        assert provider["project_id"] and provider["availability_zone"]
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0, "the head is CPU-only"
    workers = {key: spec for key, spec in types.items() if key != config["head_node_type"]}
    assert workers
    for key, spec in workers.items():
        assert spec["resources"]["GPU"] >= 1, key
        assert spec["resources"]["CPU"] >= 1, key
        assert 0 <= spec["min_workers"] <= spec["max_workers"] <= config["max_workers"], key
        assert spec["node_config"], key
    if provider["type"] == "aws":
        assert all(spec["node_config"]["InstanceType"] for spec in types.values())
    else:
        assert all(spec["node_config"]["machineType"] for spec in types.values())
        for spec in workers.values():
            (accelerator,) = spec["node_config"]["guestAccelerators"]
            assert accelerator["acceleratorCount"] == spec["resources"]["GPU"]
            assert spec["node_config"]["scheduling"]["onHostMaintenance"] == "TERMINATE"


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_launcher_config_installs_raylayers_and_starts_ray_with_token_auth(name):
    (config,) = _docs(name)
    setup = "\n".join(config["setup_commands"])
    assert "torch" in setup and "download.pytorch.org/whl/cu" in setup
    assert "pip install" in setup and "RAYLAYERS_SRC" in setup
    assert config["file_mounts"]["/home/ray/raylayers"] == "."
    assert config["file_mounts"]["/home/ray/.ray/auth_token"] == "~/.ray/auth_token"
    head = " ".join(config["head_start_ray_commands"])
    worker = " ".join(config["worker_start_ray_commands"])
    assert "ray start --head" in head and "--port=6379" in head
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    assert "--dashboard-host=127.0.0.1" in head, "job server on the head's loopback, reached through `ray dashboard`"
    assert "ray start --address=$RAY_HEAD_IP:6379" in worker
    for commands in (head, worker):
        assert "RAY_AUTH_MODE=token" in commands
        assert "ray stop" in commands


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_launcher_config_header_gives_the_commands(name):
    header = _header(name)
    for command in (f"ray up clusters/{name}", f"ray dashboard clusters/{name}", "RAY_AUTH_MODE=token ray job submit",
                    "--runtime-env clusters/runtime_env.yaml", "raylayers search --space", f"ray down clusters/{name}",
                    "ray get-auth-token --generate"):
        assert command in header, command


# --- KubeRay: rayjob.yaml ------------------------------------------------------------------------------------------

def _rayjob() -> tuple[dict, list]:
    docs = _docs("rayjob.yaml")
    (job,) = [doc for doc in docs if doc.get("kind") == "RayJob"]
    return job, [doc for doc in docs if doc is not job]


def _gpu_limit(container: dict) -> int:
    return int(container["resources"]["limits"].get("nvidia.com/gpu", 0))


def test_rayjob_runs_raylayers_search_and_shuts_down():
    job, _ = _rayjob()
    assert job["apiVersion"] == "ray.io/v1"
    assert job["metadata"]["name"]
    spec = job["spec"]
    assert spec["entrypoint"].startswith("raylayers search ")
    assert "--space search_spaces/" in spec["entrypoint"]
    assert "--out /mnt/shared/" in spec["entrypoint"]
    assert spec["shutdownAfterJobFinishes"] is True
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert runtime_env["env_vars"]["RAYLAYERS_PROGRESS"] == "0"
    assert all(isinstance(value, str) for value in runtime_env["env_vars"].values())
    assert runtime_env["working_dir"].endswith(".zip")


def test_rayjob_cluster_has_a_head_and_gpu_workers_with_token_auth():
    job, _ = _rayjob()
    cluster = job["spec"]["rayClusterSpec"]
    assert cluster["rayVersion"] == "2.60.0"
    assert cluster["authOptions"]["mode"] == "token"
    head = cluster["headGroupSpec"]
    assert all(isinstance(value, str) for value in head["rayStartParams"].values()), "rayStartParams are strings"
    (head_container,) = head["template"]["spec"]["containers"]
    assert _gpu_limit(head_container) == 0
    assert {port["containerPort"] for port in head_container["ports"]} >= {6379, 8265}
    groups = cluster["workerGroupSpecs"]
    assert groups
    for group in groups:
        assert group["groupName"]
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        (container,) = group["template"]["spec"]["containers"]
        assert _gpu_limit(container) >= 1
        resources = container["resources"]
        assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"]
    images = {c["image"] for c in [head_container] + [g["template"]["spec"]["containers"][0] for g in groups]}
    assert images == {"rayproject/ray:2.60.0-py311-gpu"}


def test_rayjob_mounts_one_shared_pvc_at_mnt_shared_everywhere():
    job, others = _rayjob()
    (pvc,) = [doc for doc in others if doc.get("kind") == "PersistentVolumeClaim"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    cluster = job["spec"]["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"]["spec"]]
    pods += [g["template"]["spec"] for g in cluster["workerGroupSpecs"]]
    for pod in pods:
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
                  for v in pod["volumes"] if "persistentVolumeClaim" in v}
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        assert claims[mounts["/mnt/shared"]] == pvc["metadata"]["name"]


def test_rayjob_space_exists_once_the_search_spaces_do():
    job, _ = _rayjob()
    space = re.search(r"--space (\S+)", job["spec"]["entrypoint"]).group(1)
    if not any((ROOT / "search_spaces").glob("*.yaml")):
        pytest.skip("no search space in search_spaces/ yet")
    assert (ROOT / space).is_file(), space


# --- ray job submit --runtime-env: runtime_env.yaml ----------------------------------------------------------------

def test_runtime_env_ships_this_checkout_with_env_vars():
    (env,) = _docs("runtime_env.yaml")
    assert env["working_dir"] == "."
    assert env["pip"]["packages"] == ["${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}"]
    assert env["env_vars"]["RAYLAYERS_PROGRESS"] == "0"
    assert "HF_HUB_OFFLINE" in env["env_vars"]
    assert all(isinstance(value, str) for value in env["env_vars"].values()), "env var values must be strings"
    assert set(env) <= {"working_dir", "excludes", "pip", "env_vars", "config"}


def test_both_runtime_envs_pass_rays_own_validation():
    from ray.runtime_env import RuntimeEnv  # validates fields and types; starts nothing

    job, _ = _rayjob()
    for env in (_docs("runtime_env.yaml")[0], yaml.safe_load(job["spec"]["runtimeEnvYAML"])):
        checked = RuntimeEnv(**env)
        assert checked["pip"]["packages"] == ["${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}"]
        assert checked["config"]["setup_timeout_seconds"] >= 600
