"""The framework-neutral core: configuration, clients, errors, usage, catalog and policies.

Nothing under ``core`` imports LangChain or LlamaIndex; both adapters are built on it.
"""

from .catalog import ModelCatalog, ModelInfo, default_catalog
from .chat import (
    acreate_chat_completion,
    astream_chat_completion,
    create_chat_completion,
    stream_chat_completion,
)
from .client import get_async_client, get_client
from .config import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL, ClientConfig
from .errors import *  # noqa: F403
from .errors import __all__ as _errors_all
from .usage import Usage, parse_usage

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "ClientConfig",
    "ModelCatalog",
    "ModelInfo",
    "Usage",
    "acreate_chat_completion",
    "astream_chat_completion",
    "create_chat_completion",
    "default_catalog",
    "get_async_client",
    "get_client",
    "parse_usage",
    "stream_chat_completion",
    *_errors_all,
]
