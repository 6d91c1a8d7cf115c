"""Finding connectors through entry points and building them from validated config."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError

from connectors.base import Connector
from inbox.config import ConfigError, LoadedConfig

ENTRY_POINT_GROUP = "inbox.connectors"


def connector_types() -> dict[str, Any]:
    """Every installed connector class, by the `type` name used in the config."""
    found: dict[str, Any] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found[entry.name] = entry.load()
    return found


def build_connectors(loaded: LoadedConfig) -> list[Connector]:
    """Validate every connector's settings with its own model; report all problems at once."""
    types = connector_types()
    problems: list[str] = []
    built: list[Connector] = []
    for index, entry in enumerate(loaded.settings.connectors):
        where = f"connectors.{index}"
        cls = types.get(entry.type)
        if cls is None:
            known = ", ".join(sorted(types)) or "none installed"
            problems.append(f"key '{where}.type': unknown connector type '{entry.type}' ({known})")
            continue
        values = entry.model_dump()
        if "spool_dir" in cls.config_model.model_fields and not values.get("spool_dir"):
            # Webhook connectors keep what they receive until it is stored: under data_dir.
            values["spool_dir"] = loaded.settings.data_dir / "spool" / entry.name
        try:
            config = cls.config_model(**values)
        except ValidationError as error:
            for item in error.errors():
                key = ".".join(str(part) for part in item["loc"])
                what = "unknown setting" if item["type"] == "extra_forbidden" else item["msg"]
                problems.append(f"key '{where}.{key}': {what}")
            continue
        if config.enabled:
            built.append(cls(config))
    if problems:
        raise ConfigError(loaded.path or "(defaults)", problems)
    return built
