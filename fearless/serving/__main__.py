"""Serve one model over HTTP.

    python -m fearless.serving --bundle DIR --port N [--host H] [--log-dir DIR]
    python -m fearless.serving --spec examples/credit/fearless.yaml --port N

`--bundle` serves a built bundle under its digest; `--spec` serves a model project as it is,
under the digest "dev", so a data scientist can try the API before building anything.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fearless.serving.batching import BatchOptions
from fearless.serving.body_limit import DEFAULT_MAX_BODY_BYTES
from fearless.serving.inference_log import SEGMENT_BYTES

if TYPE_CHECKING:
    from fearless.spec import ModelSpec

DEV_DIGEST = "dev"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fearless.serving", description="Serve a model."
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--bundle", type=Path, help="a bundle folder (fearless.yaml, manifest.json)"
    )
    source.add_argument("--spec", type=Path, help="a model project's fearless.yaml (digest 'dev')")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--log-dir", type=Path, help="append every prediction to this log root")
    parser.add_argument(
        "--log-segment-bytes",
        type=int,
        default=SEGMENT_BYTES,
        help="compact the inference log into Parquet each time a segment reaches this size",
    )
    parser.add_argument(
        "--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, help="413 above this"
    )
    parser.add_argument(
        "--max-batch", type=int, default=BatchOptions.max_records, help="records per predict call"
    )
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=BatchOptions.max_wait_s * 1000,
        help="longest a request waits for others already arriving to share its predict call",
    )
    parser.add_argument(
        "--trust-pickle",
        action=argparse.BooleanOptionalAction,
        default=_trusts_pickle(os.environ),
        help="also load .joblib/.pkl model files, which can run code (default: off, unless "
        "FEARLESS_TRUST_PICKLE is set); .skops files never need it",
    )
    parser.add_argument(
        "--no-fast-path",
        dest="fast_path",
        action="store_false",
        help="always score through the model itself, never its compiled NumPy form",
    )
    return parser.parse_args(argv)


def _trusts_pickle(environ) -> bool:
    """FEARLESS_TRUST_PICKLE read as `fearless.settings` reads it; unset or unreadable: no."""
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(bool).validate_python(environ.get("FEARLESS_TRUST_PICKLE", False))
    except ValidationError:
        return False


def _source(args: argparse.Namespace) -> tuple[ModelSpec, Path, Path, str]:
    """The spec, model file, reference data and digest to serve, from a bundle or a bare
    project."""
    from fearless.spec import load_spec, spec_path_of

    if args.bundle is not None:
        from fearless.bundles.bundle import open_bundle

        bundle = open_bundle(args.bundle)
        return bundle.spec, bundle.model_path, bundle.reference_path, bundle.digest
    spec_file = spec_path_of(args.spec)
    spec = load_spec(spec_file)
    root = spec_file.parent
    return spec, root / spec.model, root / spec.reference_data, DEV_DIGEST


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    from fearless.serving.forwarding import shadow_config

    try:
        shadow = shadow_config(os.environ)
    except ValueError as exc:
        sys.exit(f"fearless.serving: {exc}")
    try:
        spec, model_path, reference_path, digest = _source(args)
    except (OSError, ValueError, KeyError) as exc:  # SpecError and BundleError are ValueErrors
        sys.exit(f"fearless.serving: cannot serve {args.bundle or args.spec}: {exc}")
    if not model_path.is_file():
        sys.exit(f"fearless.serving: model file not found: {model_path}")

    import uvicorn

    from fearless.serving.app import ServingOptions, create_app

    options = ServingOptions(
        max_body_bytes=args.max_body_bytes,
        batch=BatchOptions(max_records=args.max_batch, max_wait_s=args.max_wait_ms / 1000),
        trust_pickle=args.trust_pickle,
        fast_path=args.fast_path,
        log_segment_bytes=args.log_segment_bytes,
    )
    shipper = _log_shipper(args.log_dir)
    # A last shipping pass, so what was logged before a stop (ECS: SIGTERM) reaches S3 too.
    last_pass = [shipper.stop] if shipper is not None else []
    app = create_app(
        spec, model_path, digest, args.log_dir, options, reference_path, shadow, last_pass
    )
    # One line at start (uvicorn logs only warnings): a crash's log tail then says what ran.
    print(f"model API {spec.name} {digest} on http://{args.host}:{args.port}", flush=True)
    if shadow is not None:
        print(f"forwarding {shadow.sample * 100:g}% of its predictions to {shadow.url}", flush=True)
    from fearless.serving.http_stack import server_options

    uvicorn.run(
        app, host=args.host, port=args.port, log_level="warning", workers=1, **server_options()
    )


def _log_shipper(log_dir: Path | None):
    """On a container platform the task's disk dies with it: with FEARLESS_INFERENCE_LOG_S3
    set, a background thread ships the inference log's chunks to S3 as they grow."""
    if log_dir is None or not os.environ.get("FEARLESS_INFERENCE_LOG_S3"):
        return None
    from fearless.aws.inference_logs import shipper_for
    from fearless.settings import get_settings

    shipper = shipper_for(get_settings(), log_dir)
    if shipper is not None:
        shipper.start()
    return shipper


if __name__ == "__main__":
    main()
