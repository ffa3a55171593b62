"""Where syncctl keeps things. Nothing else computes paths."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "syncctl"


def default_config_path() -> Path:
    env = os.environ.get("SYNCCTL_CONFIG")
    if env:
        return Path(env)
    return Path(platformdirs.user_config_dir(APP)) / "config.yaml"


def default_state_path() -> Path:
    return Path(platformdirs.user_state_dir(APP)) / "state.db"


def lock_dir(state_path: Path) -> Path:
    """Locks live beside the state file, so every process sharing a state shares its locks."""
    return state_path.parent / (state_path.name + ".locks")
