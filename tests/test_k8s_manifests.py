"""deploy/k8s: a whole distributed run, validated offline against pinned Kubernetes schemas.

``kubernetes-validate`` bundles the OpenAPI schemas of each Kubernetes release, so every
resource the kustomization applies (and the ConfigMap and Secret its generators make)
is checked against Kubernetes ``K8S_VERSION`` without a cluster. ``yamllint`` lints the
YAML itself (``deploy/k8s/.yamllint.yaml``, warnings count). The rest checks what
schemas cannot: the pieces agree with each other (Service name and port = the
workers' master address, replicas = the master's --remote-workers, one-core Guaranteed
workers, the image the kustomization rewrites).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
K8S_VERSION = "1.30.0"


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys (the last one would silently win)."""


def _no_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    duplicated = {k for k in keys if keys.count(k) > 1}
    if duplicated:
        raise yaml.constructor.ConstructorError(None, None, f"duplicate keys {duplicated}")
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def _load(path: Path) -> list[dict]:
    return [d for d in yaml.load_all(path.read_text(), Loader=_UniqueKeyLoader) if d]


@pytest.fixture(scope="module")
def kustomization() -> dict:
    return _load(K8S / "kustomization.yaml")[0]


@pytest.fixture(scope="module")
def resources(kustomization: dict) -> dict[tuple[str, str], dict]:
    """Every resource the kustomization applies plus what its generators make."""
    docs = [d for name in kustomization["resources"] for d in _load(K8S / name)]
    for gen in kustomization["configMapGenerator"]:
        literals = dict(item.split("=", 1) for item in gen["literals"])
        docs.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]},
             "data": literals}
        )  # fmt: skip
    for gen in kustomization["secretGenerator"]:
        files = {f: "" for f in gen["files"]}
        docs.append(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": gen["name"]},
             "type": "Opaque", "data": files}
        )  # fmt: skip
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_every_resource_is_valid_for_the_pinned_kubernetes(resources):
    assert {k for k, _ in resources} >= {"Namespace", "Service", "Job", "Deployment"}
    for (kind, name), doc in resources.items():
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{kind}/{name} invalid for Kubernetes {K8S_VERSION}: {exc.message}")


def test_the_validator_rejects_a_broken_manifest(resources):
    """The check above can fail: a misspelt field is an error in strict mode."""
    job = resources[("Job", "loadgate-master")]
    broken = {**job, "spec": {**job["spec"], "backofLimit": 0}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_kustomization_files_exist(kustomization):
    for name in kustomization["resources"]:
        assert (K8S / name).is_file(), name
    for gen in kustomization["secretGenerator"]:
        for name in gen["files"]:
            assert (K8S / name).is_file(), name
    assert (K8S / "Dockerfile").is_file()


def _container(doc: dict) -> dict:
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    return container


def test_workers_reach_the_master_service_and_wait_count_matches(kustomization, resources):
    service = resources[("Service", "loadgate-master")]
    run = resources[("ConfigMap", "loadgate-run")]["data"]
    worker = _container(resources[("Deployment", "loadgate-worker")])
    master = _container(resources[("Job", "loadgate-master")])
    args = worker["args"]
    assert args[0] == "worker" and args[args.index("--master") + 1] == "loadgate-master"
    assert args[args.index("--master-port") + 1] == "$(LOADGATE_MASTER_PORT)"
    assert "--run-dir" not in args  # no shared disk: records go over the channel
    port = int(run["LOADGATE_MASTER_PORT"])
    assert service["spec"]["ports"][0]["port"] == port
    assert master["ports"][0]["containerPort"] == port
    labels = resources[("Job", "loadgate-master")]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (replicas,) = [r["count"] for r in kustomization["replicas"] if r["name"] == "loadgate-worker"]
    assert replicas == int(run["LOADGATE_REMOTE_WORKERS"])
    assert "--remote-workers" in master["args"][0] and "--target" in master["args"][0]


def test_workers_are_one_core_guaranteed_and_use_the_kustomized_image(kustomization, resources):
    worker = _container(resources[("Deployment", "loadgate-worker")])
    assert worker["resources"]["requests"] == worker["resources"]["limits"]
    assert worker["resources"]["limits"]["cpu"] == "1"
    image_names = {i["name"] for i in kustomization["images"]}
    for key in (("Deployment", "loadgate-worker"), ("Job", "loadgate-master")):
        assert _container(resources[key])["image"] in image_names
    assert 'ENTRYPOINT ["loadgate"]' in (K8S / "Dockerfile").read_text()


def test_duplicate_keys_are_refused(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("a: 1\na: 2\n")
    with pytest.raises(yaml.constructor.ConstructorError):
        _load(path)


def _lint(path: Path) -> list[str]:
    config = YamlLintConfig(file=str(K8S / ".yamllint.yaml"))
    return [
        f"{path.name}:{p.line}: {p.desc} ({p.rule})" for p in linter.run(path.read_text(), config)
    ]


def test_every_manifest_passes_yamllint():
    problems = [p for path in sorted(K8S.glob("*.yaml")) for p in _lint(path)]
    assert problems == []


def test_yamllint_flags_a_sloppy_manifest(tmp_path):
    path = tmp_path / "sloppy.yaml"
    path.write_text("kind: Job \nkind: Pod\nspec:\n  backoffLimit: 0 # retry\n")
    rules = {p.rsplit("(", 1)[1] for p in _lint(path)}
    assert {"trailing-spaces)", "key-duplicates)", "comments)"} <= rules
