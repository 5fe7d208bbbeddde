"""Fearless: the library behind the release flows.

Kept cheap to import (the CLI starts from here): the notebook entry point imports its
dependencies only when called.
"""

from __future__ import annotations


def bundle_model(
    model, sample_frame, name: str, target: str | None = None, *, registry=None, **options
):
    """A fitted model and a sample of its data as a model project and a built bundle.

    `fearless.bundle_model(model, frame, name="credit", target="default")`; see
    `fearless.bundles.notebook.bundle_model` for the options (project_dir, spec fields). The
    bundle goes into `registry`, by default the one the settings configure.
    """
    from fearless.bundles.notebook import bundle_model as make

    if registry is None:
        from fearless.composition import build_services

        registry = build_services().registry
    return make(model, sample_frame, name, target, registry=registry, **options)
