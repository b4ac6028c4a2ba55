"""The workspace: a folder holding workspace.sqlite (WAL), with forward-only schema migrations."""

from cascade_studio.store.workspace import Workspace, WorkspaceError

__all__ = ["Workspace", "WorkspaceError"]
