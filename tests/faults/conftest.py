"""The fault tests drive whole releases (the e2e helpers) and moto (the integration ones)."""

from tests.e2e.conftest import releases  # noqa: F401
from tests.integration.conftest import (  # noqa: F401
    aws_calls,
    moto_endpoint,
    moto_server,
    only_granted_aws_calls,
)
