"""syncctl's own SQLite file: cursors, sent-payload hashes, id links, tokens, run log."""

from syncctl.state.store import Failing, Pushed, RunRecord, StateStore

__all__ = ["Failing", "Pushed", "RunRecord", "StateStore"]
