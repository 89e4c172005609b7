"""Issue 24.3: nobody can pose as another user: names are matched in full, can be claimed with
a secret, the bot's is reserved, and the bot comes back after a server restart."""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
import threading
import time

import pytest

from projects.chat.client import ChatClient, ChatError
from projects.chat.config import BotConfig, ServerConfig, load
from projects.chat.faq_bot import FaqIndex, bot_secret, run_forever
from projects.chat.protocol import recv_frame, send_frame
from projects.chat.server import serve_in_thread
from tests.unit.chat.conftest import joined, overrides_for
from tests.unit.chat.test_faq_bot import ENTRIES, bag_of_words

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    "name", ["carol\n", "carol\r", "carol\x00", "car\u200bol", "carol\u00a0", "\u202ecarol", ""]
)
def test_a_name_with_a_control_or_invisible_character_is_refused(connect, name):
    connect("carol")
    with pytest.raises(ChatError, match="bad_name"):
        connect(name)


def test_a_claimed_name_needs_its_secret_even_when_its_owner_is_away(server, connect):
    with ChatClient(*server.address, "bob", secret="hunter2 but longer") as bob:
        assert bob.welcome["claimed"] is True
    with pytest.raises(ChatError, match="claimed"):  # bob is offline: still his
        connect("bob")
    with socket.create_connection(server.address, timeout=10) as s:  # a wrong guess: closed
        send_frame(s, {"type": "hello", "name": "bob", "secret": "password"})
        assert recv_frame(s)["code"] == "bad_secret"
        assert recv_frame(s) is None
    again = connect("bob", secret="hunter2 but longer")
    joined(again, "lobby")
    with ChatClient(*server.address, "bob", secret="hunter2 but longer") as bob2:  # takes over
        joined(bob2, "lobby")
        assert again.wait_for("error")["code"] == "replaced"
    db = sqlite3.connect(server.cfg.db_path)
    rows = db.execute("SELECT name, salt, hash FROM claims").fetchall()
    db.close()
    assert all(b"hunter2" not in salt + digest for _, salt, digest in rows)


def test_the_bots_name_is_reserved(server, connect):
    with pytest.raises(ChatError, match="claimed"):
        connect("faqbot")
    path = server.cfg.secrets_dir + "/faqbot.secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    bot = connect("faqbot", p2p=False, secret=bot_secret(server.cfg, "faqbot"))
    assert bot.welcome["name"] == "faqbot"


def test_the_bot_reconnects_after_a_server_restart(tmp_path):
    cfg = load("server", ServerConfig, overrides_for(tmp_path))
    bot_cfg = load("bot", BotConfig)
    index = FaqIndex(ENTRIES, bag_of_words, index_text="question")
    stop = threading.Event()
    address: list = []

    def connect() -> ChatClient:
        secret = bot_secret(cfg, bot_cfg.name)
        return ChatClient(*address[-1], bot_cfg.name, p2p=False, secret=secret, timeout=5)

    bot = threading.Thread(
        target=run_forever,
        args=(connect, index, bot_cfg, stop.is_set, (0.05, 0.5)),
        name="chat-test-bot",
    )
    try:
        with serve_in_thread(cfg) as srv:
            address.append(srv.address)
            bot.start()
            with ChatClient(*srv.address, "alice", p2p=False) as alice:
                assert ask(alice, bot_cfg.name, "how do I run tests") == "make test"
        # the server is gone; a new one on the same port, the same files
        again = load(
            "server", ServerConfig, [*overrides_for(tmp_path)[1:], f"port={address[0][1]}"]
        )
        with serve_in_thread(again) as srv, ChatClient(*srv.address, "alice", p2p=False) as alice:
            assert ask(alice, bot_cfg.name, "how do I lint code") == "make lint"
    finally:
        stop.set()
        if bot.is_alive():
            bot.join(timeout=10)


def ask(client: ChatClient, bot: str, question: str, within: float = 30.0) -> str:
    """Ask `bot` in private until it is there to answer (no_such_user while it reconnects)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        client.pm(bot, question)
        while (event := client.recv(timeout=10)) is not None:
            if event["type"] == "private" and event["from"] == bot:
                return event["text"]
            if event["type"] == "error" and event["code"] == "no_such_user":
                time.sleep(0.1)
                break
    raise AssertionError(f"{bot} did not answer within {within} s")
