"""`fearless image build PATH|DIGEST [--push]`: a bundle's container image, pushed to ECR."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

image_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="A bundle's container image."
)


@image_app.command("build")
def build(
    target: Annotated[
        str, typer.Argument(help="A bundle folder, a model project, or a bundle digest.")
    ],
    push: Annotated[
        bool, typer.Option("--push", help="Push to the ECR repository of the settings.")
    ] = False,
) -> None:
    """Write the image's build context (bundle + Dockerfile + fearless wheel), then docker
    build it, and with --push tag it `<ecr repo>:<digest12>` and push it."""
    from fearless.bundles.bundle import BundleError
    from fearless.bundles.image import (
        ImageError,
        build_image,
        docker_available,
        write_build_context,
    )
    from fearless.composition import build_services
    from fearless.settings import PROJECT_ROOT

    services = build_services()
    settings = services.settings
    if push and not settings.aws_ecr_repository:
        _fail("--push needs the ECR repository: set FEARLESS_AWS_ECR_REPOSITORY", 2)
    try:
        bundle = _resolve(target, services.registry, settings.trust_pickle)
        context = settings.state_dir / "images" / f"{bundle.name}-{bundle.short_digest}"
        write_build_context(bundle.path, context, PROJECT_ROOT)
    except (BundleError, ImageError) as exc:
        _fail(str(exc), 2)
    typer.echo(f"build context for {bundle.name} {bundle.digest}: {context}")
    if push:
        ecr, repository = _repository(settings)
        if _already_pushed(ecr, repository, bundle):
            return
    missing = docker_available()
    if missing is not None:
        _fail(
            f"cannot build the image here: {missing}. The build context is ready at {context}; "
            f"build it where Docker runs: docker build --tag TAG {context}"
        )
    try:
        tag = (
            _push_tag(ecr, repository, bundle.digest)
            if push
            else f"fearless/{bundle.name}:{bundle.short_digest}"
        )
        build_image(context, tag)
        if push:
            from fearless.bundles.image import push_image

            push_image(tag)
    except ImageError as exc:
        _fail(str(exc))
    typer.echo(f"{'pushed' if push else 'built'} {tag}")


def _resolve(target: str, registry, trust_pickle: bool):
    """A bundle folder as is, a project built into the registry, or a digest looked up in it."""
    from fearless.bundles.bundle import MANIFEST, BundleError, build_bundle, open_bundle

    path = Path(target)
    if (path / MANIFEST).is_file():
        return open_bundle(path)
    if path.exists():
        return build_bundle(path, registry, trust_pickle=trust_pickle)
    digest = target if target.startswith("sha256:") else f"sha256:{target}"
    for model in registry.models():
        try:
            return registry.get_bundle(model, digest)
        except BundleError:
            continue
    raise BundleError(
        f"{target}: not a bundle folder, a model project, or a digest in the registry"
    )


def _repository(settings):
    """An ECR client and the repository's URI (created if missing)."""
    from fearless.aws import aws_client
    from fearless.aws.ecr import ensure_repository

    ecr = aws_client(settings, "ecr")
    return ecr, ensure_repository(ecr, settings.aws_ecr_repository, settings.aws_creator)


def _already_pushed(ecr, repository: str, bundle) -> bool:
    """Tags are immutable and builds not byte-reproducible: an image already pushed for this
    digest is the one to keep (a re-run of CI succeeds instead of failing on the push)."""
    from fearless.aws.ecr import image_exists, image_uri

    if not image_exists(ecr, repository, bundle.short_digest):
        return False
    typer.echo(f"already in ECR: {image_uri(repository, bundle.digest)}")
    return True


def _push_tag(ecr, repository: str, digest: str) -> str:
    """Log docker in to the repository's registry, and name the image."""
    from fearless.aws.ecr import image_uri, registry_login
    from fearless.bundles.image import docker_login

    login = registry_login(ecr)
    docker_login(login.endpoint, login.username, login.password)
    return image_uri(repository, digest)


def _fail(message: str, code: int = 1):
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.add_typer(image_app, name="image")
