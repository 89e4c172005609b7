"""A terminal chat: selectors server, curses client, peer-to-peer DMs, SQLite history, FAQ bot."""
