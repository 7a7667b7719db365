"""Docker images for environments: base image + pip dependencies, built once and reused by hash."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Callable
from typing import Any

from nbml._extras import missing_extra
from nbml.compute.base import EnvSpec
from nbml.errors import ComputeTargetException, EnvironmentBuildError

#: The last image tried as the source of DEFAULT_CPU_IMAGE (used when neither the environment nor the target
#: names an image), if the engine has it.
DEFAULT_BASE_IMAGE = "python:3.11-slim"
#: Where images built by nbml keep the environment's virtualenv (with the base image's packages visible).
ENV_PREFIX = "/opt/nbml-env"
IMAGE_REPO = "nbml-env"

LogFn = Callable[[str], None]
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def connect(docker_host: str | None = None, timeout: float = 60) -> Any:
    """A docker-py client for `docker_host` (or DOCKER_HOST / the local socket), checked with a ping."""
    try:
        import docker
    except ImportError as exc:  # the docker extra is not installed
        raise missing_extra("docker", exc) from exc

    where = docker_host or "DOCKER_HOST or the local socket"
    # ssh:// goes through the system's ssh client: your ~/.ssh/config, agent and known_hosts (host keys checked).
    over_ssh = (docker_host or os.environ.get("DOCKER_HOST", "")).startswith("ssh://")
    try:
        client = docker.DockerClient(base_url=docker_host, timeout=int(timeout), use_ssh_client=over_ssh) \
            if docker_host else docker.from_env(timeout=int(timeout), use_ssh_client=over_ssh)
        client.ping()
    except Exception as exc:  # docker raises DockerException, requests/paramiko errors, OSError...
        raise ComputeTargetException(
            f"Can't reach a Docker engine at {where}: {_short(exc)}. Start the engine (e.g. "
            "`sudo systemctl start docker`, or `dockerd &`), or point docker_host / DOCKER_HOST at a running "
            "one (unix://, tcp:// or ssh://user@host)."
        ) from None
    return client


def base_image_for(env: EnvSpec, default: str | None) -> str:
    """The environment's image, else the target's, else DEFAULT_CPU_IMAGE (which nbml can make offline)."""
    from nbml.environment import DEFAULT_CPU_IMAGE

    return env.docker_base_image or default or DEFAULT_CPU_IMAGE


def image_tag(base: str, env: EnvSpec) -> str:
    """The tag of the image for `env` on `base`: the same spec gives the same tag on every engine."""
    key = json.dumps({"base": base, "pip": sorted(env.pip), "python": env.python_version}, sort_keys=True)
    return f"{IMAGE_REPO}:{hashlib.sha256(key.encode()).hexdigest()[:20]}"


def ensure_base(client: Any, base: str, log: LogFn) -> None:
    """Make sure `base` is on the engine: pull it if it isn't, with an error that says what to do."""
    import docker.errors

    try:
        client.images.get(base)
        return
    except docker.errors.ImageNotFound:
        pass
    from nbml.environment import DEFAULT_CPU_IMAGE

    if base == DEFAULT_CPU_IMAGE:
        alias_default_image(client, log)
        return
    log(f"Base image {base} is not on the engine; pulling it")
    try:
        client.images.pull(base)
    except Exception as exc:
        raise EnvironmentBuildError(
            f"Base image {base!r} is not on the Docker engine and could not be pulled ({_short(exc)}). "
            "Pull, load or build it on that engine (`docker pull`, `docker load`, `docker build`), or set "
            "Environment.docker.base_image to an image that `docker images` lists."
        ) from None


def alias_sources() -> list[str]:
    """Local images that may become DEFAULT_CPU_IMAGE, in order: the configured base, the test image, the
    default base image (each only if the engine already has it: nothing is pulled)."""
    names = [os.environ.get("NBML_DOCKER_BASE_IMAGE"), os.environ.get("NBML_DOCKER_IMAGE"), DEFAULT_BASE_IMAGE]
    return [n for n in dict.fromkeys(names) if n]


def alias_default_image(client: Any, log: LogFn) -> str:
    """Create DEFAULT_CPU_IMAGE as a tag of a local base image that has python3 with venv; return the source.

    Why a tag and not a pull: the SDK's default image lives in an Azure registry, and nbml must work offline.
    Any image with ``python3 -m venv`` is enough, since environments install their packages on top of it.
    """
    import docker.errors

    from nbml.environment import DEFAULT_CPU_IMAGE

    tried: list[str] = []
    for source in alias_sources():
        try:
            client.images.get(source)
        except docker.errors.ImageNotFound:
            tried.append(f"{source} (not on the engine)")
            continue
        try:
            client.containers.run(source, ["python3", "-c", "import venv, ensurepip"], remove=True,
                                  network_mode="none", entrypoint=[])
        except docker.errors.ContainerError:
            tried.append(f"{source} (no python3 with venv and ensurepip)")
            continue
        repo, _, tag = DEFAULT_CPU_IMAGE.rpartition(":")
        client.images.get(source).tag(repo, tag)
        log(f"Tagged {source} as {DEFAULT_CPU_IMAGE} (the default CPU image)")
        return source
    raise EnvironmentBuildError(
        f"The default CPU image {DEFAULT_CPU_IMAGE!r} is not on the Docker engine, and no local base image can "
        f"stand in for it: tried {', '.join(tried) or 'nothing'}. Set NBML_DOCKER_BASE_IMAGE to an image on that "
        "engine with python3 and its venv module (e.g. `docker pull python:3.11-slim` where a registry is "
        f"reachable, or `docker load`), or tag one yourself: `docker tag IMAGE {DEFAULT_CPU_IMAGE}`."
    )


def dockerfile(base: str, env: EnvSpec) -> str:
    pip = " ".join(_quote(p) for p in env.pip)
    return (
        f"FROM {base}\n"
        f"RUN python3 -m venv --system-site-packages {ENV_PREFIX} \\\n"
        f" && {ENV_PREFIX}/bin/python -m pip install --no-cache-dir --disable-pip-version-check {pip}\n"
    )


def ensure_image(client: Any, env: EnvSpec, default_base: str | None, log: LogFn) -> tuple[str, str]:
    """(image, python inside it) for `env`; builds the image the first time only."""
    import docker.errors

    base = base_image_for(env, default_base)
    ensure_base(client, base, log)
    if not env.pip:
        python = env.interpreter_path if env.user_managed and env.interpreter_path else "python3"
        return base, python
    tag = image_tag(base, env)
    try:
        client.images.get(tag)
        log(f"Reusing image {tag} (base {base}, {len(env.pip)} pip packages)")
        return tag, f"{ENV_PREFIX}/bin/python"
    except docker.errors.ImageNotFound:
        pass
    log(f"Building image {tag} from {base} with: {' '.join(env.pip)}")
    context = _context(dockerfile(base, env))
    lines: list[str] = []
    error: str | None = None
    try:
        # Host networking: the build needs the package index, and engines without a bridge allow only this.
        for chunk in client.api.build(fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True,
                                      network_mode="host", decode=True, labels={"nbml.env_hash": env.hash}):
            text = chunk.get("stream") or chunk.get("status") or ""
            for line in _ANSI.sub("", text).splitlines():
                if line.strip():
                    lines.append(line)
                    log(line)
            if "error" in chunk:
                error = _ANSI.sub("", str(chunk["error"])).strip()
                log(error)
    except docker.errors.APIError as exc:
        error = _short(exc)
    if error is not None:
        tail = "\n".join(lines[-30:])
        raise EnvironmentBuildError(
            f"Building the Docker image for environment {env.name!r} failed: {error}\n"
            f"Last lines of the build log:\n{tail}\n"
            "Check the package names and versions in the environment's pip dependencies."
        )
    return tag, f"{ENV_PREFIX}/bin/python"


def _context(text: str) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = text.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) < 400 else text[:400] + "..."
