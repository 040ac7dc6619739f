"""ostinato-azure: the Azure Storage provider (Tables + Queues + Blobs) for ostinato.

Select it with ``OSTINATO_PROVIDER=azure`` and ``OSTINATO_AZURE_CONNECTION_STRING``, or build
it directly::

    from ostinato_azure import AzureStorageProvider
    provider = AzureStorageProvider(connection_string, task_hub="orders")
"""

from ostinato_azure._names import validate_task_hub
from ostinato_azure.provider import AzureStorageProvider

__all__ = ["AzureStorageProvider", "validate_task_hub"]
