"""The one exception type for problems the user can fix (bad config, missing corpus, ...).

Entry points catch it once and print its message as a single line; anything else is a bug and
keeps its traceback.
"""


class TinyGPTError(Exception):
    """A problem with the user's input, with a message that names the setting to change."""
