"""``python -m ostinato_azure poison list|replay ID`` — the poison messages of a task hub.

The connection string and task hub come from ``OSTINATO_AZURE_CONNECTION_STRING`` and
``OSTINATO_TASK_HUB`` (default ``ostinato``), or ``--connection-string`` / ``--task-hub``.
"""

from __future__ import annotations

import argparse
import os
import sys

from ostinato_azure.provider import AzureStorageProvider


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ostinato_azure", description=__doc__)
    parser.add_argument(
        "--connection-string", default=os.environ.get("OSTINATO_AZURE_CONNECTION_STRING")
    )
    parser.add_argument("--task-hub", default=os.environ.get("OSTINATO_TASK_HUB", "ostinato"))
    commands = parser.add_subparsers(dest="command", required=True)
    poison = commands.add_parser("poison", help="list or replay poison messages")
    actions = poison.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="list the poison messages")
    replay = actions.add_parser("replay", help="put a poison message back on its queue")
    replay.add_argument("message_id")
    options = parser.parse_args(argv)
    if not options.connection_string:
        parser.error("no connection string: set OSTINATO_AZURE_CONNECTION_STRING")
    provider = AzureStorageProvider(options.connection_string, options.task_hub)
    try:
        if options.action == "list":
            rows = provider.list_poison_messages()
            for row in rows:
                print(
                    f"{row['id']}  {row['queue']}  instance={row['instance_id']!r}  "
                    f"dequeues={row['dequeue_count']}  {row['reason']}"
                )
            if not rows:
                print("No poison messages.")
        else:
            provider.replay_poison_message(options.message_id)
            print(f"Replayed {options.message_id}")
    finally:
        provider.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
