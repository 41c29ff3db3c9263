"""The account's credit state, shared by every model, fallback and route in the process.

A 402 means the account behind a key is out of credits, whichever model answered it: trying the
next model of a fallback chain, or retrying, can only fail the same way (and, on a real gateway,
may count against the key). So a 402 marks the account (per gateway and key) out of credits, and
until it is cleared (:meth:`Accounts.clear`, after adding credits), a later response shows credits,
or ``recheck_after`` seconds pass (then one request goes out to look), every request raises
:class:`~aisa_integrations.core.errors.InsufficientCreditsError` at once without being sent.

>>> from aisa_integrations.core import ClientConfig
>>> config = ClientConfig.resolve(api_key="k", base_url="http://127.0.0.1:9/v1")
>>> accounts.mark_out_of_credits(config, "gpt-4.1")
>>> accounts.is_out_of_credits(config)
True
>>> accounts.clear(config)
>>> accounts.is_out_of_credits(config)
False
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import errors as E

__all__ = ["Accounts", "accounts"]


@dataclass
class _OutOfCredits:
    since: float
    model: str | None
    probing: bool = False


class Accounts:
    """Which accounts (gateway + key digest) are out of credits in this process."""

    def __init__(self, *, recheck_after: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.recheck_after = recheck_after
        self.clock = clock
        self._lock = threading.Lock()
        self._out: dict[tuple[str, str], _OutOfCredits] = {}

    @staticmethod
    def _key(config: Any) -> tuple[str, str]:
        return (str(config.base_url), str(config.pool_key[0]))

    def check(self, config: Any, model: str | None) -> None:
        """Before a request: raise if the account is out of credits (one look after ``recheck_after``)."""
        if not self._out:
            return
        key = self._key(config)
        with self._lock:
            state = self._out.get(key)
            if state is None:
                return
            if not state.probing and self.clock() - state.since >= self.recheck_after:
                state.probing = True  # this request looks; the others keep waiting
                return
            since = state.model
        raise E.InsufficientCreditsError(
            f"Not sent: the AIsa account is out of credits (a 402 answered a request to {since!r}), so no model "
            f"or fallback is tried until credits are added. Add credits at {E.CREDITS_URL}, then call "
            "aisa_integrations.core.account.accounts.clear() (or wait: one request looks again every "
            f"{self.recheck_after:g} s).",
            status_code=402,
            code="insufficient_credits",
            model=model,
        )

    def mark_out_of_credits(self, config: Any, model: str | None) -> None:
        with self._lock:
            self._out[self._key(config)] = _OutOfCredits(self.clock(), model)

    def saw_credits(self, config: Any, credits_remaining: float | None) -> None:
        """A billed answer: if it shows credits left, the account is no longer out."""
        if not self._out or (credits_remaining is not None and credits_remaining <= 0):
            return
        with self._lock:
            self._out.pop(self._key(config), None)

    def is_out_of_credits(self, config: Any) -> bool:
        return self._key(config) in self._out

    def clear_gateway(self, base_url: str) -> None:
        """Forget the out-of-credits marks of every key at one gateway."""
        with self._lock:
            for key in [k for k in self._out if k[0] == str(base_url)]:
                del self._out[key]

    def clear(self, config: Any = None) -> None:
        """Forget the out-of-credits mark (of one account, or all): after adding credits."""
        with self._lock:
            if config is None:
                self._out.clear()
            else:
                self._out.pop(self._key(config), None)


#: The process-wide account state every engine consults.
accounts = Accounts()
