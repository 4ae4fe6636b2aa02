"""The Qt-free reading state: study -> images -> nodules, undo/redo, autosave, restore."""
