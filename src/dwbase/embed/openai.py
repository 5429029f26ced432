"""Any OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, Ollama, vLLM, LM Studio, ...).

Named ``openai:<base url>[#<model>]``, e.g. ``openai:http://127.0.0.1:11434/v1#nomic-embed-text``.
The base URL is the part before ``/embeddings``. The API key comes from ``DWBASE_OPENAI_API_KEY``
(or ``OPENAI_API_KEY``); a local server usually needs none. Standard library only (urllib), so
it works with no extras installed.
"""

from __future__ import annotations

import json
import math
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from ..errors import InvalidInputError, UnavailableError

DEFAULT_MODEL = "text-embedding-3-small"


def parse_name(spec: str) -> tuple[str, str]:
    """``"http://host/v1#model"`` -> (embeddings URL, model)."""
    url, _, model = spec.partition("#")
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise InvalidInputError(
            f"openai embedder needs an http(s) URL, got {spec!r}; "
            "example: openai:http://127.0.0.1:11434/v1#nomic-embed-text",
            field="embedder",
        )
    if not url.endswith("/embeddings"):
        url += "/embeddings"
    return url, model.strip() or DEFAULT_MODEL


class OpenAIEmbedder:
    """Embeds by POSTing ``{"model", "input": [texts]}`` and reading ``data[i].embedding``."""

    def __init__(
        self,
        url: str,
        model: str = DEFAULT_MODEL,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        batch_size: int = 64,
        dim: int | None = None,
    ) -> None:
        self.url, parsed_model = parse_name(url if "#" in url else url + "#" + model)
        self.model = parsed_model
        self.api_key = (
            api_key or os.environ.get("DWBASE_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY")
        )
        self.timeout_s = timeout_s
        self.batch_size = batch_size
        base = self.url[: -len("/embeddings")]
        self.name = f"openai:{base}#{self.model}"
        self.version = "1"
        # The dimension is the model's: ask once, so a wrong URL fails at open, not at write.
        self.dim = dim if dim is not None else len(self._request(["dimension probe"])[0])

    def _request(self, texts: Sequence[str]) -> list[list[float]]:
        body = json.dumps({"model": self.model, "input": list(texts)}).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = "Bearer " + self.api_key
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                data: Any = json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace")
            raise UnavailableError(
                f"embeddings endpoint {self.url} answered {exc.code}: {detail}"
            ) from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise UnavailableError(f"embeddings endpoint {self.url} failed: {exc}") from exc
        try:
            items = sorted(data["data"], key=lambda d: d.get("index", 0))
            rows = [[float(v) for v in item["embedding"]] for item in items]
        except (KeyError, TypeError, ValueError) as exc:
            raise UnavailableError(
                f"embeddings endpoint {self.url} sent no data[].embedding list"
            ) from exc
        if len(rows) != len(texts):
            raise UnavailableError(
                f"embeddings endpoint {self.url} sent {len(rows)} vectors for {len(texts)} texts"
            )
        return rows

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            for row in self._request(texts[i : i + self.batch_size]):
                if len(row) != self.dim:
                    raise UnavailableError(
                        f"embeddings endpoint {self.url} sent {len(row)} dims, expected {self.dim}"
                    )
                norm = math.sqrt(sum(v * v for v in row))
                out.append([v / norm for v in row] if norm else row)
        return out
