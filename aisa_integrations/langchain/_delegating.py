"""What FallbackRunnable and TaskRouterRunnable share: chat models that delegate to other chat models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable
from pydantic import BaseModel

from ..core.catalog import default_catalog
from ..core.errors import AIsaError
from .chat_model import StructuredOutputMethod, structured_output_runnable, tool_binding


def child_callbacks(run_manager: Any, manager_cls: type) -> Any:
    """Callbacks that make a delegated call a child run of this run (LLM run managers lack
    ``get_child``; this is what chain run managers do)."""
    if run_manager is None:
        return None
    manager = manager_cls(handlers=[], parent_run_id=run_manager.run_id)
    manager.set_handlers(run_manager.inheritable_handlers)
    manager.add_tags(run_manager.inheritable_tags)
    manager.add_metadata(run_manager.inheritable_metadata)
    return manager


class DelegatingChatModel(BaseChatModel):
    """Binding for chat models that hand requests to other chat models: tools are formatted and
    checked once, before anything is sent, and travel as call kwargs to whichever model serves."""

    @property
    def model_name(self) -> str:  # overridden
        raise NotImplementedError

    def bind_tools(
        self,
        tools: Sequence[Any],
        *,
        tool_choice: Any = None,
        parallel_tool_calls: bool | None = None,
        strict: bool | None = None,
        response_format: Any = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(**tool_binding(tools, tool_choice, parallel_tool_calls, strict, response_format, kwargs))

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: StructuredOutputMethod = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Structured output through every model this one may delegate to."""
        if kwargs:
            raise AIsaError(f"Unknown arguments to with_structured_output: {sorted(kwargs)}")
        return structured_output_runnable(
            self,
            schema,
            method=method,
            include_raw=include_raw,
            strict=strict,
            model_info=default_catalog().info(self.model_name),
        )
