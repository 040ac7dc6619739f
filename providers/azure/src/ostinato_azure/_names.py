"""Task hub names and the storage resource names derived from them (Azure naming rules)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ostinato.errors import ConfigurationError

#: Table names allow 3-63 letters and digits starting with a letter; queue and container names
#: 3-63 lowercase letters, digits and single hyphens. The longest suffix we add is 19
#: characters ("-largemessages" / "Partitions"), so a task hub has 3-45 characters.
_HUB = re.compile(r"[A-Za-z][A-Za-z0-9]*")
MIN_HUB_LENGTH = 3
MAX_HUB_LENGTH = 45
MAX_PARTITIONS = 16


def validate_task_hub(name: str) -> str:
    """Return ``name`` if it is a valid task hub name, else raise ``ConfigurationError``."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError("The Azure task hub name must be a non-empty string")
    if not MIN_HUB_LENGTH <= len(name) <= MAX_HUB_LENGTH:
        raise ConfigurationError(
            f"Azure task hub name {name!r} must have {MIN_HUB_LENGTH}-{MAX_HUB_LENGTH} characters "
            f"(it names tables, queues and a blob container); it has {len(name)}"
        )
    if not _HUB.fullmatch(name) or not name.isascii():
        raise ConfigurationError(
            f"Azure task hub name {name!r} may contain only ASCII letters and digits and must "
            "start with a letter (Azure table names allow nothing else)"
        )
    return name


@dataclass(frozen=True)
class HubNames:
    """Every storage resource of one task hub."""

    hub: str
    partition_count: int

    @property
    def instances_table(self) -> str:
        return f"{self.hub}Instances"

    @property
    def legacy_history_table(self) -> str:
        """The separate history table of the earlier layout (see ``README.md``)."""
        return f"{self.hub}History"

    @property
    def partitions_table(self) -> str:
        return f"{self.hub}Partitions"

    @property
    def poison_table(self) -> str:
        return f"{self.hub}Poison"

    def control_queue(self, index: int) -> str:
        return f"{self.hub.lower()}-control-{index:02d}"

    @property
    def activity_queue(self) -> str:
        return f"{self.hub.lower()}-workitems"

    @property
    def container(self) -> str:
        return f"{self.hub.lower()}-largemessages"

    @property
    def tables(self) -> list[str]:
        return [self.instances_table, self.partitions_table, self.poison_table]

    @property
    def queues(self) -> list[str]:
        return [self.control_queue(i) for i in range(self.partition_count)] + [self.activity_queue]
