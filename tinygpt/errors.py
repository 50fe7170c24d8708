"""The one exception type for problems the user can fix (bad config, missing corpus, ...).

Entry points catch it once and print its message as a single line; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator


class TinyGPTError(Exception):
    """A problem with the user's input, with a message that names the setting to change."""


def instantiate(config: object, *args: object, **kwargs: object) -> object:
    """``hydra.utils.instantiate`` with our split between the user's problems and bugs.

    A TinyGPTError from the target comes through unwrapped; a ``_target_`` that cannot be found
    or called with the configured arguments is the config's fault and becomes one line; anything
    raised inside the target is a bug and keeps its traceback.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(config, *args, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, TinyGPTError):
            raise cause from None
        message = str(e)
        if cause is None or message.startswith("Error locating target") or _bad_arguments(cause):
            raise TinyGPTError(message.replace("\n", " ")) from e
        raise cause from e


def _bad_arguments(error: BaseException) -> bool:
    """A TypeError raised by the call itself (keys the target does not take, a missing one):
    its traceback ends in Hydra's call site, not inside the target."""
    if not isinstance(error, TypeError) or error.__traceback__ is None:
        return False
    tb = error.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    return "hydra" in tb.tb_frame.f_code.co_filename


@contextlib.contextmanager
def one_line_errors(app: str, log: logging.Logger) -> Iterator[None]:
    """A TinyGPTError leaves the app as one line on stderr and exit status 2 (bad input); any
    other exception keeps its traceback (a bug)."""
    from omegaconf.errors import MissingMandatoryValue

    try:
        yield
    except MissingMandatoryValue as e:  # a ``???`` read before any check named it
        key = e.full_key or "a mandatory setting"
        _leave(app, log, f"{key} is not set: add {key}=<value> to the command")
    except TinyGPTError as e:
        _leave(app, log, str(e))


def _leave(app: str, log: logging.Logger, message: str) -> None:
    log.error("%s", message)
    print(f"{app}: error: {message}", file=sys.stderr)
    sys.exit(2)
