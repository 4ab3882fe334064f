"""The HTTP session the providers' libraries talk through."""

from __future__ import annotations

from typing import Any

import requests

TIMEOUT_SECONDS = 30


class ProviderSession(requests.Session):
    """A requests session with a default timeout, whose ``ca_file`` really is used.

    requests lets ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` override a session's ``verify``;
    an operator who sets ``oauth2.ca_file`` means that bundle, so here it wins. Without one, the
    environment and the system's store apply as usual.
    """

    def __init__(self, verify: str | bool = True) -> None:
        super().__init__()
        self.verify = verify

    def request(self, method: str, url: str,  # type: ignore[override]
                *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", TIMEOUT_SECONDS)
        return super().request(method, url, *args, **kwargs)

    def merge_environment_settings(self, url: str, proxies: Any, stream: Any,
                                   verify: Any, cert: Any) -> dict[str, Any]:
        merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if isinstance(self.verify, str) and verify in (None, True):
            merged["verify"] = self.verify
        return merged
