"""Account commands: `livermore users` and `livermore user-exchanges`."""
