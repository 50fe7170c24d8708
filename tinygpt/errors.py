"""The one exception type for problems the user can fix (bad config, missing corpus, ...).

Entry points catch it once and print its message as a single line; anything else is a bug and
keeps its traceback.
"""


class TinyGPTError(Exception):
    """A problem with the user's input, with a message that names the setting to change."""


def instantiate(config: object, *args: object, **kwargs: object) -> object:
    """``hydra.utils.instantiate`` that lets a TinyGPTError from the target through unwrapped."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(config, *args, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, TinyGPTError):
            raise e.__cause__ from None
        raise TinyGPTError(str(e).replace("\n", " ")) from e
