"""What the read-only commands share: the server's address read cheaply from the environment,
its REST API, and where reports are linked from. Nothing here imports Prefect, httpx or the
settings model on the default backend."""

from __future__ import annotations


def server_address():
    """The configured server (`fearless.platform.address`); where a value needs `Settings` to
    judge it, building them fails with their own message."""
    from fearless.platform.address import read_address

    address = read_address()
    if address is None:
        from fearless.settings import get_settings

        get_settings()  # raises the ValidationError naming the bad value
        raise AssertionError("read_address declined values that Settings accepts")
    return address


def prefect_api(address):
    """The server's REST API, as Prefect's own client would reach it."""
    from fearless.platform.rest import PrefectApi

    return PrefectApi(address.api_url, auth_string=address.auth_string, api_key=address.api_key)


def report_links(address):
    """Where reports are linked from: the server's report route, from the environment alone;
    on AWS, S3, built from the whole settings."""
    if address.backend == "local":
        from fearless.platform.reports import ServedReports

        return ServedReports(address.runs, address.reports_url, address.auth_string)
    from fearless.composition import build_reports
    from fearless.settings import get_settings

    return build_reports(get_settings())
