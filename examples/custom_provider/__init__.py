"""A small, real custom provider on plain files: the worked example of docs/custom-provider.md."""

from examples.custom_provider.file_provider import FileProvider

__all__ = ["FileProvider"]
