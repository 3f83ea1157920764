"""Errors that decide the exit code: each carries one line a user can act on."""


class ConvertError(Exception):
    """A failure with a one-line message; `exit_code` is what the CLI returns."""

    exit_code = 1


class ConfigError(ConvertError):
    """Usage or configuration is wrong (unknown model, unsupported model, bad flag): exit 2."""

    exit_code = 2


class HubUnreachableError(ConfigError):
    """The model hub cannot be reached and the model is not in the local cache: exit 2."""


class ParityError(ConvertError):
    """A converted format computes different embeddings than the PyTorch reference: exit 1."""
