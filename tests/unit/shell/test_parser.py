"""The tokenizer, parser and word expansion, tested in process (no fork)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from projects.shell.expand import expand_string, expand_word
from projects.shell.lexer import (
    IncompleteInput,
    Lit,
    Param,
    ShellSyntaxError,
    Unsupported,
    tokenize,
)
from projects.shell.parser import Command, Redirect, Subshell, parse

pytestmark = pytest.mark.timeout(30)

VARS = {"HOME": "/home/u", "X": "a  b", "EMPTY": "", "N": "7", "?": "3", "$": "4242"}


def words(source: str) -> list[str]:
    """Every word of a one-command source, expanded with VARS (globbing off)."""
    command = parse(source).items[0].first.commands[0]
    return [f for w in command.argv for f in expand_word(w, VARS.get, globbing=False)]


def only_command(source: str) -> Command:
    return parse(source).items[0].first.commands[0]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("echo   a\tb", ["echo", "a", "b"]),
        ("echo 'a  $X \"q\"'", ["echo", 'a  $X "q"']),
        ('echo "a  $X" "\\$X \\" \\\\ \\n"', ["echo", "a  a  b", '$X " \\ \\n']),
        ("echo a\\ b \\'c\\'", ["echo", "a b", "'c'"]),
        ("echo $X", ["echo", "a", "b"]),  # unquoted: split into fields
        ('echo "$X"', ["echo", "a  b"]),
        ("echo ${N}th $N$N", ["echo", "7th", "77"]),
        ("echo $? $$", ["echo", "3", "4242"]),
        ("echo $EMPTY end", ["echo", "end"]),  # an empty unquoted expansion vanishes
        ('echo "$EMPTY" \'\' ""', ["echo", "", "", ""]),  # quoted empties are arguments
        ("echo x$X.y", ["echo", "xa", "b.y"]),
        ("echo ~ ~/d a~", ["echo", "/home/u", "/home/u/d", "a~"]),
        ("echo $ '$' a$", ["echo", "$", "$", "a$"]),
        ("echo a#b # a comment", ["echo", "a#b"]),
        ("echo li\\\nne", ["echo", "line"]),  # backslash-newline joins lines
    ],
)
def test_quoting_and_variables_expand_like_sh(source, expected):
    assert words(source) == expected


def test_words_keep_which_parts_were_quoted():
    token = tokenize("a'b'$X\"$N\"")[0]
    assert token.parts == (
        Lit("a"),
        Lit("b", quoted=True),
        Param("X"),
        Lit("", True),
        Param("N", True),
    )


def test_globbing_matches_files_but_not_quoted_stars(tmp_path, monkeypatch):
    for name in ("b.txt", "a.txt", ".hidden.txt", "c.md"):
        (tmp_path / name).write_text("")
    monkeypatch.chdir(tmp_path)
    command = only_command("ls *.txt '*.txt' \\*.txt nomatch*")
    fields = [f for w in command.argv for f in expand_word(w, VARS.get)]
    assert fields == ["ls", "a.txt", "b.txt", "*.txt", "*.txt", "nomatch*"]


def test_assignment_values_are_not_split():
    command = only_command("A=$X B='q r' env")
    assert [name for name, _ in command.assigns] == ["A", "B"]
    assert [expand_string(v, VARS.get) for _, v in command.assigns] == ["a  b", "q r"]
    assert len(command.argv) == 1


def test_assignment_only_before_the_command_name():
    command = only_command("echo A=1")
    assert command.assigns == () and len(command.argv) == 2


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("cat < in", [(0, "<", "in")]),
        ("echo > out", [(1, ">", "out")]),
        ("echo >> out", [(1, ">>", "out")]),
        ("ls 2> err", [(2, ">", "err")]),
        ("ls >out 2>&1", [(1, ">", "out"), (2, ">&", "1")]),
        ("ls 2>&1 >out", [(2, ">&", "1"), (1, ">", "out")]),  # order is kept: it matters
        ("echo >&2", [(1, ">&", "2")]),
        ("echo a2>f", [(1, ">", "f")]),  # `a2` is a word, not an fd number
        ("echo '2'>f", [(1, ">", "f")]),
    ],
)
def test_redirections(source, expected):
    command = only_command(source)
    got = [(r.fd, r.op, expand_string(r.target, VARS.get)) for r in command.redirects]
    assert got == expected


def test_redirection_anywhere_in_the_command():
    command = only_command("> out echo hi")
    assert command.redirects == (Redirect(1, ">", (Lit("out"),)),)
    assert words("> out echo hi") == ["echo", "hi"]


def test_pipelines_lists_and_background():
    tree = parse("a | b && ! c || d & e; f\ng")
    first, e, f, g = tree.items
    assert first.background and first.text == "a | b && ! c || d"
    assert len(first.first.commands) == 2
    assert [op for op, _ in first.rest] == ["&&", "||"]
    assert first.rest[0][1].negated
    assert [item.text for item in (e, f, g)] == ["e", "f", "g"]
    assert not any(item.background for item in (e, f, g))


def test_subshell_with_redirection():
    command = only_command("(cd /tmp; pwd) > out")
    assert isinstance(command, Subshell)
    assert len(command.body.items) == 2
    assert command.redirects[0].op == ">"


@pytest.mark.parametrize(
    ("source", "token"),
    [
        ("| wc", "|"),
        ("ls | | wc", "|"),
        ("echo a && && b", "&&"),
        ("echo a ;;", ";;"),
        (";", ";"),
        ("echo a &; echo b", ";"),
        ("echo > > f", ">"),
        ("echo >", "newline"),
        ("echo )", ")"),
        ("()", ")"),
        ("echo (", "("),
        ("(echo) x", "x"),
    ],
)
def test_syntax_errors_name_the_token(source, token):
    with pytest.raises(ShellSyntaxError) as info:
        parse(source)
    assert not isinstance(info.value, IncompleteInput)
    assert str(info.value) == f"syntax error near unexpected token '{token}'"


@pytest.mark.parametrize(
    "source", ["echo 'open", 'echo "open', "echo a |", "a &&", "b ||", "(echo", "echo \\", "${X"]
)
def test_unfinished_input_asks_for_more(source):
    with pytest.raises(IncompleteInput):
        parse(source)


def test_unfinished_input_completes_on_the_next_line():
    tree = parse("echo 'a\nb' |\n tr a A")
    assert len(tree.items) == 1
    assert len(tree.items[0].first.commands) == 2


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("echo ${X-y}", "operators are not supported"),
        ("echo ${X y}", "bad substitution"),
        ("echo $(ls)", "not supported"),
        ("echo `ls`", "not supported"),
        ("cat << EOF", "not supported"),
    ],
)
def test_unsupported_syntax_is_an_error_not_a_surprise(source, message):
    with pytest.raises(ShellSyntaxError, match=message):
        parse(source)


@pytest.mark.parametrize(
    ("source", "word"),
    [
        ("[ -d x ] && { cd x; rm f; }", "{"),
        ("echo a; }", "}"),
        ("for x in a; do echo $x; done", "for"),
        ("echo a |\n while true; do :; done", "while"),
        ("until", "until"),
        ("x=1 > f if true; then :; fi", "if"),  # bash reads `if` here too
        ("echo a; then", "then"),
        ("case a in a) ;; esac", "case"),
        ("in", "in"),
        ("! function f", "function"),
        ("select x", "select"),
        ("a && [[ -d / ]]", "[["),
        ("time sleep 1", "time"),
        ("echo a || done", "done"),
    ],
)
def test_reserved_words_in_command_position_are_refused(source, word):
    with pytest.raises(Unsupported, match=f"^'{re.escape(word)}': .* not supported"):
        parse(source)


@pytest.mark.parametrize(
    "source",
    ["((1+2))", "f() { :; }", "echo a{b,c}", "echo {1..3}", "echo a &> f", "echo $((1))"],
)
def test_other_bash_syntax_is_refused(source):
    with pytest.raises(Unsupported, match="not supported"):
        parse(source)


@pytest.mark.parametrize(
    "source",
    ["echo if then { } done", "'if' x", "\\for", "x={a,b}", "find . -exec a {} ;", "( (a) )"],
)
def test_reserved_words_elsewhere_are_ordinary_words(source):
    parse(source)


def test_double_negation_and_misplaced_bang():
    assert parse("! ! true").items[0].first.negated is False
    assert parse("! true").items[0].first.negated is True
    with pytest.raises(ShellSyntaxError, match="unexpected token '!'"):
        parse("echo a | ! cat")


def test_empty_and_comment_only_input_is_an_empty_list():
    assert parse("").items == ()
    assert parse("  # nothing\n\n").items == ()


def test_glob_in_a_variable_is_expanded_when_unquoted(tmp_path: Path, monkeypatch):
    (tmp_path / "f1").write_text("")
    monkeypatch.chdir(tmp_path)
    lookup = {"P": "f*"}.get
    assert expand_word((Param("P"),), lookup) == ["f1"]
    assert expand_word((Param("P", quoted=True),), lookup) == ["f*"]
