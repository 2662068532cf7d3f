"""The one exception type for user mistakes.

`ConfigError` is a user mistake in a config, on the command line or in a data file: the command
line prints its one-line message and exits 2. It subclasses ValueError, so a library caller
who passes a bad value gets the ValueError it expects. Anything else raised inside zoo is a
bug and keeps its traceback.
"""


class ConfigError(ValueError):
    """A user mistake: one line naming the problem and the fix."""
