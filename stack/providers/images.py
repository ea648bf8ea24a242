"""The containers provider's images: build context, content digest, build.

Images are built from the project's own Dockerfiles (``stack/images/<image>/``)
on a configurable base image, never pulled. The tag is a hash of everything a
build depends on (the whole build context with exec bits, the build args and
the base image's id), so an unchanged image is never rebuilt and a changed
input always is. Builds run with ``--network host`` so RUN steps reach the
package mirrors on machines without a Docker bridge.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import ssl
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import docker
import docker.errors

from stack.errors import DockerUnavailable, StackError
from stack.ownership import owned_temp_prefix

IMAGES_DIR = Path(__file__).resolve().parent.parent / "images"
STRIPE_MOCK_SOURCE = Path(__file__).resolve().parent.parent / "stripe_mock.py"
MARKETPLACE_SOURCE = Path(__file__).resolve().parent.parent.parent / "marketplace"
IMAGE_REPO = "loadgate"
LABEL_IMAGE = "loadgate.image"
MARKETPLACE_PACKAGES = (
    "fastapi",
    "pydantic",
    "uvicorn",
    "uvloop",
    "httptools",
    "psycopg",
    "psycopg-binary",
    "psycopg-pool",
    "redis",
    "arq",
    "purgatory",
    "PyJWT",
    "prometheus-client",
    "stripe",
    "httpx",
)

Progress = Callable[[str], None]


# --- build context ------------------------------------------------------------------


def osrm_package_bin() -> Path:
    """``osrm/bin`` of the installed osrm-bindings wheel (found without importing it)."""
    spec = importlib.util.find_spec("osrm")
    if spec is None or not spec.submodule_search_locations:
        raise StackError(
            "the osrm-bindings wheel is not installed (its binaries go into the osrm "
            "image): pip install osrm-bindings (Python >= 3.12)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "bin"


def host_ca_bundle() -> bytes:
    """The CA bundle this host trusts, for pip inside image builds.

    Where HTTPS goes through an intercepting proxy, the host trusts an extra
    CA that a freshly debootstrapped base image does not; empty when no
    bundle is found (pip then uses its own).
    """
    candidates = [
        os.environ.get("PIP_CERT"),
        os.environ.get("REQUESTS_CA_BUNDLE"),
        os.environ.get("SSL_CERT_FILE"),
        ssl.get_default_verify_paths().cafile,
        "/etc/ssl/certs/ca-certificates.crt",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate).read_bytes()
    return b""


def marketplace_requirements() -> bytes:
    """The service's dependencies pinned to this venv's versions."""
    lines = []
    for package in MARKETPLACE_PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            lines.append(f"{package}=={importlib.metadata.version(package)}")
    return ("\n".join(lines) + "\n").encode()


def context_extras(image: str) -> dict[str, Path | bytes]:
    """Files an image needs beyond its own directory, by path in the build context.

    Kept out of ``stack/images`` so there is one copy of each: the OSRM
    binaries are the venv's (both providers run the same OSRM) and the Stripe
    mock is ``stack/stripe_mock.py`` itself.
    """
    if image == "osrm":
        return {"bin": osrm_package_bin()}
    if image == "stripe":
        return {"stripe_mock.py": STRIPE_MOCK_SOURCE, "build-ca-bundle.crt": host_ca_bundle()}
    if image == "marketplace":
        return {
            "marketplace": MARKETPLACE_SOURCE,
            "requirements.txt": marketplace_requirements(),
            "build-ca-bundle.crt": host_ca_bundle(),
        }
    return {}


def build_args(image: str, base_image: str) -> dict[str, str]:
    """Build arguments; the Stripe mock pins the versions installed here."""
    args = {"BASE_IMAGE": base_image}
    if image == "stripe":
        for package, arg in (
            ("localstripe", "LOCALSTRIPE_VERSION"),
            ("aiohttp", "AIOHTTP_VERSION"),
        ):
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                args[arg] = importlib.metadata.version(package)
    return args


def context_files(image: str) -> dict[str, Path | bytes]:
    """Every file of an image's build context: relative path -> source file or bytes."""
    image_dir = IMAGES_DIR / image
    if not (image_dir / "Dockerfile").is_file():
        raise StackError(f"no Dockerfile for image {image!r}: expected {image_dir}/Dockerfile")
    sources: dict[str, Path | bytes] = {}
    roots: list[tuple[str, Path | bytes]] = [("", image_dir), *context_extras(image).items()]
    for prefix, source in roots:
        if isinstance(source, bytes) or source.is_file():
            sources[prefix] = source
            continue
        for path in sorted(
            p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ):
            relative = path.relative_to(source).as_posix()
            sources[f"{prefix}/{relative}" if prefix else relative] = path
    return sources


def context_digest(files: Mapping[str, Path | bytes], args: Mapping[str, str], base_id: str) -> str:
    """Hash of everything a build depends on: files (with exec bit), args, base image."""
    digest = hashlib.sha256(f"base={base_id}\n".encode())
    for name, value in sorted(args.items()):
        digest.update(f"arg {name}={value}\n".encode())
    for relative, source in sorted(files.items()):
        if isinstance(source, bytes):
            content, executable = source, False
        else:
            content, executable = source.read_bytes(), os.access(source, os.X_OK)
        digest.update(f"file {relative} {int(executable)} {len(content)}\n".encode())
        digest.update(content)
    return digest.hexdigest()


def write_context(files: Mapping[str, Path | bytes], target: Path) -> None:
    for relative, source in files.items():
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, bytes):
            destination.write_bytes(source)
        else:
            shutil.copy2(source, destination)


def image_tag(image: str, digest: str) -> str:
    return f"{IMAGE_REPO}/{image}:{digest[:16]}"


# --- building -----------------------------------------------------------------------


def base_image_id(client: docker.DockerClient, base: str) -> str:
    """The id of the base image, which must already be in the engine (no pulls)."""
    try:
        return str(client.images.get(base).id)
    except docker.errors.ImageNotFound:
        raise DockerUnavailable(
            f"base image {base} is not in the Docker engine and cannot be pulled here: "
            "build it offline with scripts/docker-engine.sh (debootstrap + docker import) "
            "or docker pull/load it"
        ) from None


def ensure_image(
    client: docker.DockerClient,
    image: str,
    base_image: str,
    base_id: str,
    temp_prefix: str,
    progress: Progress,
) -> str:
    """The tag of ``image`` built from its current inputs; builds only if missing.

    The build context goes to a temp dir named like the provider's own
    (``temp_prefix``), so it is reaped if the harness is killed mid-build.
    """
    files = context_files(image)
    args = build_args(image, base_image)
    tag = image_tag(image, context_digest(files, args, base_id))
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(tag)
        progress(f"image {tag}: cached")
        return tag
    progress(f"image {tag}: building")
    prefix = owned_temp_prefix(temp_prefix, f"build-{image}")
    with tempfile.TemporaryDirectory(prefix=prefix) as context:
        write_context(files, Path(context))
        build(client, image, Path(context), tag, args, progress)
    progress(f"image {tag}: built")
    return tag


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _is_step_output(line: str) -> bool:
    """A line a RUN step printed, not the builder's own bookkeeping."""
    bookkeeping = ("Step ", "---> ", "Removing intermediate container", "Running in ")
    return bool(line) and not line.startswith(bookkeeping)


def build(
    client: docker.DockerClient,
    image: str,
    context: Path,
    tag: str,
    args: Mapping[str, str],
    progress: Progress,
) -> None:
    """``docker build --network host``, streaming step lines to progress."""
    output: list[str] = []
    stream = client.api.build(
        path=str(context),
        tag=tag,
        buildargs=dict(args),
        network_mode="host",
        rm=True,
        forcerm=True,
        pull=False,
        decode=True,
        labels={LABEL_IMAGE: image},
    )
    for chunk in stream:
        if "error" in chunk:
            last = next((line for line in reversed(output) if _is_step_output(line)), "")
            raise StackError(
                f"building image {tag} failed: {' '.join(str(chunk['error']).split())}"
                f"{f' (last output: {last})' if last else ''}; check that `docker build "
                f"--network host` reaches the package mirrors, and {IMAGES_DIR / image}"
            )
        for line in _ANSI.sub("", str(chunk.get("stream", ""))).splitlines():
            output.append(line.strip())
            if line.startswith("Step "):
                progress(f"image {tag}: {line.strip()[:120]}")
