"""The error for a configuration that cannot work, found when training starts."""


class ConfigError(ValueError):
    """A config value that cannot work (the message names the key); the CLI prints it without a traceback."""
