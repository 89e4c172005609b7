"""The terminal UI (stdlib curses): message pane, user list, status line, input line.

What to show is decided by plain functions over a `TuiState` (`format_event`, `parse_input`,
`visible_lines`), so they are testable without a terminal; `run_tui` only draws that state and
turns keys into edits. Commands: /join ROOM, /leave [ROOM], /rooms, /who, /msg USER TEXT
(private, via the server), /dm USER TEXT (direct, peer to peer), /more (older history),
/help, /quit; any other line is said in the current room. PageUp/PageDown and the arrow keys
scroll the message pane.

    CHAT_SECRET=... python -m projects.chat.tui --name alice [--room lobby] [host=... port=...]

With CHAT_SECRET set, the first login claims the name for that secret and later ones need it.
"""

from __future__ import annotations

import argparse
import contextlib
import curses
import locale
import os
import textwrap
import time
from dataclasses import dataclass, field
from typing import Any

from projects.chat.client import ChatClient, ChatError
from projects.chat.config import ServerConfig, load
from shared.cli import expected_errors
from shared.errors import InputError

USERS_WIDTH = 18
HELP = (
    "commands: /join ROOM  /leave [ROOM]  /rooms  /who  /msg USER TEXT  /dm USER TEXT  "
    "/more  /quit  (PgUp/PgDn scroll)"
)


@dataclass
class TuiState:
    me: str
    room: str = ""  # the room plain lines go to ("" before the first join)
    rooms: set[str] = field(default_factory=set)
    users: list[str] = field(default_factory=list)  # members of `room`
    lines: list[str] = field(default_factory=list)  # message pane entries, oldest first
    oldest_id: dict[str, int] = field(default_factory=dict)  # per room, for /more
    scroll: int = 0  # wrapped lines scrolled up from the bottom
    text: str = ""  # the input line
    running: bool = True


def _clock(ts: Any) -> str:
    return time.strftime("%H:%M", time.localtime(ts)) if isinstance(ts, int | float) else "--:--"


def _said(m: dict[str, Any]) -> str:
    return f"{_clock(m.get('ts'))} #{m['room']} <{m['from']}> {m['text']}"


def format_event(msg: dict[str, Any]) -> list[str]:
    """The pane lines an event adds (none for events that only change state)."""
    kind = msg.get("type")
    if kind == "message":
        return [_said(msg)]
    if kind == "private":
        return [f"{_clock(msg.get('ts'))} [pm {msg['from']} -> {msg['to']}] {msg['text']}"]
    if kind == "dm":
        return [f"{_clock(msg.get('ts'))} [direct from {msg['from']}] {msg['text']}"]
    if kind == "presence":
        verb = "joined" if msg["event"] == "join" else "left"
        return [f"-- {msg['user']} {verb} #{msg['room']}"]
    if kind == "joined":
        lines = [f"-- you joined #{msg['room']} ({len(msg['users'])} here)"]
        if msg.get("more"):
            lines.append("-- (older messages: /more)")
        return lines + [_said(m) for m in msg.get("history", [])]
    if kind == "left":
        return [f"-- you left #{msg['room']}"]
    if kind == "room_list":
        rooms = ", ".join(f"#{r['room']} ({r['users']})" for r in msg["rooms"]) or "none"
        return [f"-- rooms: {rooms}"]
    if kind == "user_list":
        return [f"-- in #{msg['room']}: {', '.join(msg['users']) or 'nobody'}"]
    if kind == "history":
        if not msg["messages"]:
            return [f"-- no older messages in #{msg['room']}"]
        head = f"-- {len(msg['messages'])} older messages of #{msg['room']}:"
        return [head] + [_said(m) for m in msg["messages"]] + ["-- end of older messages"]
    if kind == "p2p_opened":  # not on p2p_offer: an offer alone connects nothing
        return [f"-- {msg['user']} opened a direct connection to you"]
    if kind == "p2p_closed":
        return [f"-- direct connection with {msg['user']} closed"]
    if kind == "error":
        return [f"!! {msg.get('code')}: {msg.get('message')}"]
    if kind == "disconnected":
        return [f"!! disconnected: {msg.get('reason')} (/quit to exit)"]
    return []


def apply_event(state: TuiState, msg: dict[str, Any]) -> None:
    """Update the room, user list and pane of `state` for one event."""
    kind = msg.get("type")
    room = msg.get("room")
    if kind == "joined":
        state.rooms.add(room)
        state.room, state.users = room, list(msg["users"])
        if msg.get("history"):
            state.oldest_id[room] = msg["history"][0]["id"]
    elif kind == "left":
        state.rooms.discard(room)
        if state.room == room:
            state.room = sorted(state.rooms)[0] if state.rooms else ""
            state.users = []
    elif kind == "presence" and room == state.room:
        users = set(state.users)
        (users.add if msg["event"] == "join" else users.discard)(msg["user"])
        state.users = sorted(users)
    elif kind == "user_list" and room == state.room:
        state.users = list(msg["users"])
    elif kind == "history" and msg["messages"]:
        state.oldest_id[room] = msg["messages"][0]["id"]
    state.lines.extend(format_event(msg))


def parse_input(line: str, room: str) -> tuple[str, ...]:
    """An input line -> an action tuple: ('say', room, text), ('join', room), ('error', why)..."""
    line = line.strip()
    if not line:
        return ("noop",)
    if not line.startswith("/"):
        return ("say", room, line) if room else ("error", "join a room first: /join ROOM")
    cmd, _, rest = line[1:].partition(" ")
    rest = rest.strip()
    if cmd == "join" and rest:
        return ("join", rest.lstrip("#"))
    if cmd == "leave":
        target = rest.lstrip("#") or room
        return ("leave", target) if target else ("error", "not in a room")
    if cmd == "rooms":
        return ("list",)
    if cmd == "who":
        target = rest.lstrip("#") or room
        return ("who", target) if target else ("error", "not in a room")
    if cmd in ("msg", "dm"):
        user, _, text = rest.partition(" ")
        if user and text.strip():
            return (cmd, user, text.strip())
        return ("error", f"usage: /{cmd} USER TEXT")
    if cmd == "more":
        return ("more", room) if room else ("error", "not in a room")
    if cmd == "help":
        return ("help",)
    if cmd in ("quit", "exit"):
        return ("quit",)
    return ("error", f"unknown command /{cmd} (/help lists them)")


def visible_lines(lines: list[str], width: int, height: int, scroll: int) -> tuple[list[str], int]:
    """The wrapped lines that fit a `height`-row pane scrolled `scroll` rows up (clamped)."""
    wrapped: list[str] = []
    for line in lines:
        wrapped += textwrap.wrap(line, max(width, 1), subsequent_indent="  ") or [""]
    scroll = max(0, min(scroll, len(wrapped) - height))
    end = len(wrapped) - scroll
    return wrapped[max(0, end - height) : end], scroll


def perform(client: ChatClient, state: TuiState, action: tuple[str, ...]) -> None:
    """Carry out one parsed input line."""
    kind, args = action[0], action[1:]
    try:
        if kind == "say":
            client.say(*args)
        elif kind == "join":
            client.join(args[0])
        elif kind == "leave":
            client.leave(args[0])
        elif kind == "list":
            client.list_rooms()
        elif kind == "who":
            client.who(args[0])
        elif kind == "msg":
            client.pm(args[0], args[1])
        elif kind == "dm":
            client.dm(args[0], args[1])
            state.lines.append(f"{_clock(time.time())} [direct to {args[0]}] {args[1]}")
        elif kind == "more":
            client.history(args[0], before=state.oldest_id.get(args[0]), limit=20)
        elif kind == "help":
            state.lines.append(f"-- {HELP}")
        elif kind == "quit":
            state.running = False
        elif kind == "error":
            state.lines.append(f"!! {args[0]}")
    except (ChatError, OSError, TimeoutError) as exc:
        state.lines.append(f"!! {kind} failed: {exc}")


def _put(win: Any, y: int, x: int, text: str, width: int, attr: int = 0) -> None:
    with contextlib.suppress(curses.error):  # writing the bottom-right cell raises; harmless
        win.addnstr(y, x, text, max(width, 0), attr)


def draw(win: Any, state: TuiState) -> None:
    h, w = win.getmaxyx()
    win.erase()
    pane_w = max(w - USERS_WIDTH - 1, 10)
    pane_h = max(h - 3, 1)
    title = f" chat: {state.me} in #{state.room or '-'}   /help for commands "
    _put(win, 0, 0, title.ljust(w), w, curses.A_REVERSE)
    shown, state.scroll = visible_lines(state.lines, pane_w, pane_h, state.scroll)
    for i, line in enumerate(shown):
        _put(win, 1 + i, 0, line, pane_w)
    for y in range(1, 1 + pane_h):
        _put(win, y, pane_w, "|", 1)
    _put(win, 1, pane_w + 1, f" users ({len(state.users)})", USERS_WIDTH, curses.A_BOLD)
    for i, user in enumerate(state.users[: pane_h - 1]):
        _put(win, 2 + i, pane_w + 2, user, USERS_WIDTH - 1)
    status = f" scrolled up {state.scroll} lines (PgDn)" if state.scroll else ""
    _put(win, h - 2, 0, status.ljust(w, "-") if status else "-" * w, w)
    prompt = "> " + state.text
    visible = prompt[-(w - 1) :]
    _put(win, h - 1, 0, visible, w - 1)
    with contextlib.suppress(curses.error):
        win.move(h - 1, min(len(visible), w - 1))
    win.refresh()


def handle_key(client: ChatClient, state: TuiState, key: str | int, pane_h: int) -> None:
    """Edit the input line, submit it, or scroll the pane."""
    if key in ("\n", "\r", curses.KEY_ENTER):
        line, state.text = state.text, ""
        state.scroll = 0
        perform(client, state, parse_input(line, state.room))
    elif key in (curses.KEY_BACKSPACE, "\x7f", "\b"):
        state.text = state.text[:-1]
    elif key == "\x15":  # Ctrl-U clears the line
        state.text = ""
    elif key == curses.KEY_PPAGE:
        state.scroll += max(pane_h - 1, 1)
    elif key == curses.KEY_NPAGE:
        state.scroll = max(0, state.scroll - max(pane_h - 1, 1))
    elif key == curses.KEY_UP:
        state.scroll += 1
    elif key == curses.KEY_DOWN:
        state.scroll = max(0, state.scroll - 1)
    elif isinstance(key, str) and key.isprintable():
        state.text += key


def _loop(win: Any, client: ChatClient, room: str) -> None:
    curses.curs_set(1)
    win.keypad(True)
    win.timeout(100)  # wake ten times a second to show what arrived
    state = TuiState(me=client.name)
    client.join(room)
    while state.running:
        for _ in range(1000):
            msg = client.recv(timeout=0)
            if msg is None:
                break
            apply_event(state, msg)
        draw(win, state)
        try:
            key = win.get_wch()
        except curses.error:
            continue
        if key == curses.KEY_RESIZE:
            continue
        handle_key(client, state, key, win.getmaxyx()[0] - 3)


def run_tui(client: ChatClient, room: str) -> None:
    """Run the curses UI on the terminal until /quit or Ctrl-C."""
    locale.setlocale(locale.LC_ALL, "")
    with contextlib.suppress(KeyboardInterrupt):
        curses.wrapper(_loop, client, room)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Terminal chat client (curses).")
    parser.add_argument("--name", required=True, help="your user name")
    parser.add_argument("--room", default=None, help="room to join (default: the server's)")
    parser.add_argument("overrides", nargs="*", help="server config overrides: host=... port=...")
    args = parser.parse_args(argv)
    with expected_errors():
        cfg = load("server", ServerConfig, args.overrides)
        try:
            client = ChatClient(
                cfg.host,
                cfg.port,
                args.name,
                max_frame=cfg.max_frame_bytes,
                secret=os.environ.get("CHAT_SECRET") or None,  # claims the name on first use
            )
        except (OSError, ChatError) as exc:
            raise InputError(f"cannot join the chat at {cfg.host}:{cfg.port}: {exc}") from None
    with client:
        run_tui(client, args.room or client.welcome["default_room"])


if __name__ == "__main__":
    main()
