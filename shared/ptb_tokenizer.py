"""Penn Treebank tokenisation exactly as coco-caption runs it, in pure Python.

coco-caption (pycocoevalcap) scores captions only after running Stanford CoreNLP 3.4.1's
``PTBTokenizer -preserveLines -lowerCase`` over all of them (one caption a line) and dropping
the tokens in its PUNCTUATIONS list. BLEU and CIDEr-D count n-grams of those tokens, so any
other split (``t-shirt`` -> ``t shirt``, ``dog's`` kept whole) moves the scores. This module
reproduces that step without Java: it emulates the JFlex scanner CoreNLP generates from
``PTBLexer.flex`` (v3.4.1), rule by rule, with JFlex's matching discipline:

- at each position every rule is tried and the longest match wins, a trailing context
  ``r1/r2`` counting towards the length; ties go to the rule written first;
- only ``r1`` of ``r1/r2`` is consumed (split where ``r1`` is longest, as JFlex 1.4 does);
- the scanner is ``%caseless``, but that never reaches inside character classes, so
  ``[A]bout`` matches "About"/"ABOUT" and not "about";
- it reads UTF-16 code units, so a character beyond U+FFFF (an emoji) is two units that only
  the catch-all rule takes, deleting them (unless a URL or e-mail address swallows them);
- the lexer runs over the whole batch (captions joined by newlines): a few rules look past the
  end of a caption into the next one, so a batch is tokenised together, as coco-caption does.

The options in force are CoreNLP's defaults (``ptb3Escaping``: ``(`` -> ``-LRB-``, a double
quote -> two backquotes or two apostrophes, dashes -> ``--``, ellipses -> ``...``, fractions
and currency normalised, untokenizable characters deleted) plus ``tokenizeNLs``. Each token is
then lower-cased as Java does it (``String.toLowerCase``, which places a final sigma by its own
word rules), so ``-LRB-`` reaches the punctuation filter as ``-lrb-``, which that list does not
hold, and stays.

Checked against the Java tokenizer on every BMP character in six contexts and on 10^5 random
strings (see tests/unit/test_ptb_tokenizer.py for the caption-like set the tests run).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import regex

__all__ = ["PUNCTUATIONS", "ptb_tokenize", "ptb_tokenize_batch", "ptb_tokens"]

# pycocoevalcap/tokenizer/ptbtokenizer.py drops exactly these after lower-casing.
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--"]
    + ["...", ";"]
)


# Java's simple case mappings tie three more characters to ASCII letters; JFlex's caseless
# matching follows them ("'tıl" is "'til", "Maſs." is "Mass.").
_CASE_FOLDS = {"i": "\u0131\u0130", "k": "\u212a", "s": "\u017f"}


def _caseless(pattern: str) -> str:
    """Make ASCII letters outside character classes match both cases (JFlex ``%caseless``).

    A global IGNORECASE flag would also widen classes such as ``[A]`` or ``[A-Z]``, which the
    lexer writes on purpose to be case-sensitive.
    """
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            # Copy an escape whole: \p{..}, \uXXXX, \xXX or one escaped character.
            nxt = pattern[i + 1]
            j = pattern.index("}", i) + 1 if nxt in "pP" else i + {"u": 6, "x": 4}.get(nxt, 2)
            out.append(pattern[i:j])
            i = j
            continue
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        elif not in_class and c.isascii() and c.isalpha():
            c = f"[{c.lower()}{c.upper()}{_CASE_FOLDS.get(c.lower(), '')}]"
        out.append(c)
        i += 1
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# JFlex macros of PTBLexer.flex (3.4.1), same names. JFlex's "[^]" (any character, newline
# included) is [\s\S]. Its [:letter:], [:digit:] and [:uppercase:] are Java's isLetter, isDigit
# and isUpperCase as of the JDK that generated the lexer (Unicode 6.x): the regex module's
# \p{L}, \p{Nd}, \p{Lu} know letters added since, which Java deletes as untokenizable, and two
# Mongolian letters it has since reclassified as marks. Found by running every BMP character
# through the Java tokenizer.
# ---------------------------------------------------------------------------------------------
_M: dict[str, str] = {}


def _def(name: str, pattern: str) -> None:
    """Define a macro; ``{NAME}`` inside ``pattern`` expands to an earlier one, in a group."""
    for key, value in _M.items():
        pattern = pattern.replace("{" + key + "}", f"(?:{value})")
    _M[name] = pattern


_def(
    "NEWER_THAN_JFLEX",
    r"[\u037F\u0528-\u052F\u0558\u0560\u0588-\u058C\u05EF\u0860-\u088F\u08A1\u08AD-\u08C9"
    r"\u0978\u0980\u09FC\u0AF9\u0C34\u0C5A-\u0C5D\u0C80\u0CDC-\u0CDD\u0D04\u0D54-\u0D5F"
    r"\u0DE6-\u0DEF\u0E86\u0E89\u0E8C\u0E8E-\u0E93\u0E98\u0EA0\u0EA8-\u0EA9\u0EAC"
    r"\u13F5-\u13FD\u16F1-\u16F8\u170D\u171F\u1878\u191D-\u191E\u19B0-\u19C0\u19C8-\u19C9"
    r"\u1B4C\u1C80-\u1CBF\u1CF2-\u1CF3\u1CFA\u208F\u209D-\u209F\u2C2F\u2C5F\u312E-\u312F"
    r"\u31BB-\u31BF\u4DB6-\u4DBF\u9FCD-\u9FFF\uA698-\uA69D\uA78F\uA794-\uA79F\uA7AB-\uA7F7"
    r"\uA8FD-\uA8FE\uA9E0-\uA9FE\uAA7E-\uAA7F\uAB30-\uABBF]",
)
_def("JLETTER", r"(?!{NEWER_THAN_JFLEX})[\p{L}\u1885\u1886]")
_def("JDIGIT", r"(?!{NEWER_THAN_JFLEX})\p{Nd}")
_def(
    "SGML",
    r"<(?:[!?][A-Za-z\-][^>\r\n]*|[A-Za-z][A-Za-z0-9_:.\-]*(?:[ ]+(?:[A-Za-z][A-Za-z0-9_:.\-]*"
    r"|[A-Za-z][A-Za-z0-9_:.\-]*[ ]*=[ ]*(?:'[^']*'|\"[^\"]*\")))*[ ]*/?"
    r"|/[A-Za-z][A-Za-z0-9_:.\-]*)[ ]*>",
)
_def("SPMDASH", r"&(?:MD|mdash|ndash);|[\u0096\u0097\u2013\u2014\u2015]")
_def("SPAMP", r"&amp;")
_def("SPPUNC", r"&(?:HT|TL|UR|LR|QC|QL|QR|odq|cdq|#[0-9]+);")
_def("SPLET", r"&[aeiouAEIOU](?:acute|grave|uml);")
_def("SPACE", r"[ \t\u00A0\u2000-\u200A\u3000]")
_def("SPACES", r"{SPACE}+")
_def("NEWLINE", r"\r|\r?\n|\u2028|\u2029|\u000B|\u000C|\u0085")
_def("SPACENL", r"{SPACE}|{NEWLINE}")
_def("SPACENLS", r"{SPACENL}+")
_def("SENTEND", r"{SPACENL}(?:{SPACENL}|(?!{NEWER_THAN_JFLEX})\p{Lu}|{SGML})")
_def("DIGIT", r"{JDIGIT}|[\u07C0-\u07C9]")
_def("DATE", r"{DIGIT}{1,2}[\-/]{DIGIT}{1,2}[\-/]{DIGIT}{2,4}")
_def("NUM", r"{DIGIT}+|{DIGIT}*(?:[.:,\u00AD\u066B\u066C]{DIGIT}+)+")
_def("NUMBER", r"[\-+]?{NUM}")
_def(
    "SUBSUPNUM",
    r"[\u207A\u207B\u208A\u208B]?(?:[\u2070\u00B9\u00B2\u00B3\u2074-\u2079]+|[\u2080-\u2089]+)",
)
_def("FRAC", r"(?:{DIGIT}{1,4}[\- \u00A0])?{DIGIT}{1,4}(?:\\?/|\u2044){DIGIT}{1,4}")
_def("FRAC2", r"[\u00BC\u00BD\u00BE\u2153-\u215E]")
_def("DOLSIGN", r"[A-Z]*\$|#")
_def(
    "DOLSIGN2",
    r"[\u00A2\u00A3\u00A4\u00A5\u0080\u20A0\u20AC\u060B\u0E3F\u20A4\uFFE0\uFFE1\uFFE5\uFFE6]",
)
_def(
    "LETTER",
    r"{JLETTER}|{SPLET}|[\u00AD\u0237-\u024F\u02C2-\u02C5\u02D2-\u02DF\u02E5-\u02FF\u0300-\u036F"
    r"\u0370-\u037D\u0384\u0385\u03CF\u03F6\u03FC-\u03FF\u0483-\u0487\u04CF\u04F6-\u04FF"
    r"\u0510-\u0525\u055A-\u055F\u0591-\u05BD\u05BF\u05C1\u05C2\u05C4\u05C5\u05C7\u0615-\u061A"
    r"\u063B-\u063F\u064B-\u065E\u0670\u06D6-\u06EF\u06FA-\u06FF\u070F\u0711\u0730-\u074F"
    r"\u0750-\u077F\u07A6-\u07B1\u07CA-\u07F5\u07FA\u0900-\u0903\u093C\u093E-\u094E\u0951-\u0955"
    r"\u0962-\u0963\u0981-\u0983\u09BC-\u09C4\u09C7\u09C8\u09CB-\u09CD\u09D7\u09E2\u09E3"
    r"\u0A01-\u0A03\u0A3C\u0A3E-\u0A4F\u0A81-\u0A83\u0ABC-\u0ACF\u0B82\u0BBE-\u0BC2\u0BC6-\u0BC8"
    r"\u0BCA-\u0BCD\u0C01-\u0C03\u0C3E-\u0C56\u0D3E-\u0D44\u0D46-\u0D48\u0E30-\u0E3A\u0E47-\u0E4E"
    r"\u0EB1-\u0EBC\u0EC8-\u0ECD]",
)
_def("WORD", r"{LETTER}(?:{LETTER}|{DIGIT})*(?:[.!?]{LETTER}(?:{LETTER}|{DIGIT})*)*")
_def(
    "FILENAME_EXT",
    r"bat|bmp|c|class|cgi|cpp|dll|doc|docx|exe|gif|gz|h|htm|html|jar|java|jpeg|jpg|mov|mp3|pdf"
    r"|php|pl|png|ppt|ps|py|sql|tar|txt|wav|x|xml|zip",
)
_def("FILENAME", r"(?:{LETTER}|{DIGIT})+(?:[.](?:{LETTER}|{DIGIT})+)*(?:[.]{FILENAME_EXT})")
_def("APOS", r"['\u0092\u2019]|&apos;")
_def("APOSETCETERA", r"{APOS}|[`\u0091\u2018\u201B]")
_def("HYPHEN", r"[\-_\u058A\u2010\u2011]")
_def(
    "THING",
    r"(?:[dDoOlL]{APOSETCETERA}(?:{JLETTER}|{JDIGIT}))?(?:{JLETTER}|{JDIGIT})+"
    r"(?:{HYPHEN}(?:[dDoOlL]{APOSETCETERA}(?:{JLETTER}|{JDIGIT}))?(?:{JLETTER}|{JDIGIT})+)*",
)
_def("THINGA", r"[A-Z]+(?:(?:[+&]|{SPAMP})[A-Z]+)+")
_def("THING3", r"[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\?/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}")
_def(
    "ACRO",
    r"[A-Za-z](?:\.[A-Za-z])*|(?:Canada|Sino|Korean|EU|Japan|non)-U\.S|U\.S\.-(?:U\.K|U\.S\.S\.R)",
)
_def(
    "ACRO2",
    r"[A-Za-z](?:\.[A-Za-z])+|(?:Canada|Sino|Korean|EU|Japan|non)-U\.S|U\.S\.-(?:U\.K|U\.S\.S\.R)",
)
_def("HTHING", r"[A-Za-z0-9][A-Za-z0-9.,\u00AD]*(?:-(?:[A-Za-z0-9\u00AD]+|{ACRO2}\.))+")
_def("REDAUX", r"{APOS}(?:[msdMSD]|re|ve|ll)")
_def("SWORD", r"[A-Za-z\u00AD]*[A-MO-Za-mo-z]\u00AD*")
_def("SREDAUX", r"n{APOSETCETERA}t")
_def(
    "APOWORD",
    r"{APOS}n{APOS}?|[lLdDjJ]{APOS}|Dunkin{APOS}|somethin{APOS}|ol{APOS}|{APOS}em"
    r"|[A-HJ-XZn]{APOSETCETERA}{JLETTER}{2}{JLETTER}*|{APOS}[2-9]0s|{APOS}till?"
    r"|{JLETTER}{JLETTER}*[aeiouyAEIOUY]{APOSETCETERA}[aeiouA-Z]{JLETTER}*|{APOS}cause"
    r"|cont'd\.?|'twas"
    r"|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l|O{APOSETCETERA}o",
)
_def("APOWORD2", r"y{APOS}")
_def("FULLURL", r"https?://[^ \t\n\f\r\"<>|(){}]+[^ \t\n\f\r\"<>|.!?(){},\-]")
# The flex source writes "[^ ... ,-_$]": a range from "," to "_" (digits, capitals, ...).
_def(
    "LIKELYURL",
    r"(?:(?:www\.(?:[^ \t\n\f\r\"<>|.!?(){},]+\.)+[a-zA-Z]{2,4})"
    r"|(?:(?:[^ \t\n\f\r\"`'<>|.!?(){}\x2C-\x5F$]+\.)+(?:com|net|org|edu)))"
    r"(?:/[^ \t\n\f\r\"<>|()]+[^ \t\n\f\r\"<>|.!?(){},\-])?",
)
_def(
    "EMAIL",
    r"(?:&lt;|<)?[a-zA-Z0-9][^ \t\n\f\r\"<>|()\u00A0{}]*@(?:[^ \t\n\f\r\"<>|(){}.\u00A0]+\.)*"
    r"(?:[^ \t\n\f\r\"<>|(){}.\u00A0]+)(?:&gt;|>)?",
)
_def("TWITTER", r"@[a-zA-Z_][a-zA-Z_0-9]*|#{LETTER}+")
_def("ABMONTH", r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec")
_def("ABDAYS", r"Mon|Tue|Tues|Wed|Thu|Thurs|Fri")
_def(
    "ABSTATE",
    r"Ala|Ariz|[A]z|[A]rk|Calif|Colo|Conn|Ct|Dak|[D]el|Fla|Ga|[I]ll|Ind|Kans?|Ky|[L]a|[M]ass|Md"
    r"|Mich|Minn|[M]iss|Mo|Mont|Neb|Nev|Okla|[O]re|[P]a|Penn|Tenn|[T]ex|Va|Vt|[W]ash|Wisc?|Wyo",
)
_def("ABCOMP", r"Inc|Cos?|Corp|Pp?t[ye]s?|Ltd|Plc|Rt|Bancorp|Bhd|Assn|Univ|Intl|Sys")
_def("ABNUM", r"tel|est|ext|sq")
_def("ABPTIT", r"Jr|Sr|Bros|(?:Ed|Ph)\.D|Blvd|Rd|Esq")
_def(
    "ABBREV1",
    r"(?:{ABMONTH}|{ABDAYS}|{ABSTATE}|{ABCOMP}|{ABNUM}|{ABPTIT}|etc|al|seq|Bldg)\.",
)
_def(
    "ABTITLE",
    r"Mr|Mrs|Ms|[M]iss|Drs?|Profs?|Sens?|Reps?|Attys?|Lt|Col|Gen|Messrs|Govs?|Adm|Rev|Maj|Sgt"
    r"|Cpl|Pvt|Capt|Ste?|Ave|Pres|Lieut|Hon|Brig|Co?mdr|Pfc|Spc|Supts?|Det|Mt|Ft|Adj|Adv|Asst"
    r"|Assoc|Ens|Insp|Mlle|Mme|Msgr|Sfc",
)
_def("ABCOMP2", r"Invt|Elec|Natl|M[ft]g|Dept")
_def("ABBREV4", r"{ABTITLE}|vs|Alex|Wm|Jos|Cie|a\.k\.a|cf|TREAS|Ph|{ACRO}|{ABCOMP2}")
_def("ABBREV2", r"{ABBREV4}\.")
_def("ACRONYM", r"{ACRO}\.")
_def("ABBREV3", r"(?:ca|figs?|prop|nos?|art|bldg|prop|pp|op)\.")
_def(
    "PHONE",
    r"(?:\([0-9]{2,3}\)[ \u00A0]?|(?:\+\+?)?(?:[0-9]{2,4}[\- \u00A0])?[0-9]{2,4}[\- \u00A0])"
    r"[0-9]{3,4}[\- \u00A0]?[0-9]{3,5}"
    r"|(?:(?:\+\+?)?[0-9]{2,4}\.)?[0-9]{2,4}\.[0-9]{3,4}\.[0-9]{3,5}",
)
_def("LDOTS", r"\.{3,5}|(?:\.[ \u00A0]){2,4}\.|[\u0085\u2026]")
_def("FNMARKS", r"@+|#+|_+")
_def("ASTS", r"\*+|(?:\\\*){1,3}")
_def("INSENTP", r"[,;:\u3001]")
_def(
    "QUOTES",
    r"{APOS}|''|[`\u2018\u2019\u201A\u201B\u201C\u201D\u0091\u0092\u0093\u0094\u201E\u201F"
    r"\u2039\u203A\u00AB\u00BB]{1,2}",
)
_def("DBLQUOT", r"\"|&quot;")
_def(
    "TBSPEC",
    r"-(?:RRB|LRB|RCB|LCB|RSB|LSB)-|C\.D\.s|pro-|anti-|S(?:&|&amp;)P-500|S(?:&|&amp;)Ls"
    r"|Cap{APOS}n|c{APOS}est",
)
_def("TBSPEC2", r"{APOS}[0-9][0-9]")
_def("SMILEY", r"[<>]?[:;=][\-o*']?[()DPdpO\\{@|\[\]]")
# The first alternative is written "[\^x=~<>]\.\[\^x=~<>]" in the flex file: after the dot it
# is a literal "[^x=~<>]" string, not a class. Reproduced as written.
_def(
    "ASIANSMILEY",
    r"[\^x=~<>]\.\[\^x=~<>\]|[\-\^x=~<>']_[\-\^x=~<>']|\([\-\^x=~<>'][_.]?[\-\^x=~<>']\)"
    r"|\([\^x=~<>']-[\^x=~<>'`]\)",
)
_def(
    "MISCSYMBOL",
    r"[+%&~\^|\\\u00A6\u00A7\u00A8\u00A9\u00AC\u00AE\u00AF\u00B0-\u00B3\u00B4-\u00BA\u00D7\u00F7"
    r"\u0387\u05BE\u05C0\u05C3\u05C6\u05F3\u05F4\u0600-\u0603\u0606-\u060A\u060C\u0614\u061B"
    r"\u061E\u066A\u066D\u0703-\u070D\u07F6\u07F7\u07F8\u0964\u0965\u0E4F\u1FBD\u2016\u2017"
    r"\u2020-\u2023\u2030-\u2038\u203B\u203E-\u2042\u2044\u207A-\u207F\u208A-\u208E\u2100-\u214F"
    r"\u2190-\u21FF\u2200-\u2BFF\u3012\u30FB\uFF01-\uFF0F\uFF1A-\uFF20\uFF3B-\uFF40\uFF5B-\uFF65]",
)
# The words after which an acronym's period is taken as a sentence end (case-sensitive first
# letter: "[A]bout" matches "About" but not "about").
_def(
    "SENTSTARTWORD",
    r"[A]bout|[A]ccording|[A]dditionally|[A]fter|[A]n|[A]|[A]s|[A]t|[B]ut|[E]arlier|[H]e|[H]er"
    r"|[H]ere|[H]owever|[I]f|[I]n|[I]t|[L]ast|[M]any|[M]ore|[M]r\.|[M]s\.|[N]ow|[O]nce|[O]ne"
    r"|[O]ther|[O]ur|[S]he|[S]ince|[S]o|[S]ome|[S]uch|[T]hat|[T]he|[T]heir|[T]hen|[T]here"
    r"|[T]hese|[T]hey|[T]his|[W]e|[W]hen|[W]hile|[W]hat|[Y]et|[Y]ou|{SGML}",
)


# ---------------------------------------------------------------------------------------------
# Token actions: what each rule hands back. An action gets the text r1 matched and returns
# (token or None, how many of its characters to give back to the input, JFlex's yypushback).
# ---------------------------------------------------------------------------------------------
Action = Callable[[str], tuple[str | None, int]]
NEWLINE_TOKEN = "*NL*"


def _emit(text: str) -> tuple[str | None, int]:
    return text, 0


def _skip(text: str) -> tuple[str | None, int]:
    """Whitespace, zero-width characters and untokenizable ones vanish (default firstDelete)."""
    return None, 0


def _const(token: str) -> Action:
    return lambda text: (token, 0)


def _split_after(n: int) -> Action:
    """Split assimilations: "cannot" -> "can" "not", "gonna" -> "gon" "na", "'twas" -> "'t" ..."""
    return lambda text: (text[:n], len(text) - n)


def _period_again(text: str) -> tuple[str | None, int]:
    """An "etc." before a capital or at the very end is kept whole, its period lexed again."""
    return text, 1


def _remove_soft_hyphens(text: str) -> tuple[str | None, int]:
    """U+00AD only marks where a line may break; a token of nothing else becomes "-"."""
    out = text.replace("\u00ad", "")
    return (out or "-"), 0


def _space_to_nbsp(text: str) -> str:
    """Tokens that may hold a space (fractions, phone numbers, SGML) keep it as U+00A0."""
    return text.replace(" ", "\u00a0")


def _parens(text: str) -> str:
    return text.replace("(", "-LRB-").replace(")", "-RRB-")


_AMP = regex.compile(r"(?i:&amp;)")


def _normalize_amp(text: str) -> tuple[str | None, int]:
    return _AMP.sub("&", text), 0


_FRACTIONS = {"\u00bc": "1/4", "\u00bd": "1/2", "\u00be": "3/4", "\u2153": "1/3", "\u2154": "2/3"}
_CURRENCY = {"\u00a2": "cents", "\u00a3": "#", "\u0080": "$", "\u00a4": "$", "\u20a0": "$"}
_CURRENCY["\u20ac"] = "$"

_SINGLE = regex.compile(r"&apos;|'")
_DOUBLE = regex.compile(r"\"|&quot;")
_LEFT_SINGLE = regex.compile("[\u0091\u2018\u201b\u2039]")
_RIGHT_SINGLE = regex.compile("[\u0092\u2019\u203a]")
_LEFT_DOUBLE = regex.compile("[\u0093\u201c\u00ab]")
_RIGHT_DOUBLE = regex.compile("[\u0094\u201d\u00bb]")


def _latex_quotes(probably_left: bool) -> Action:
    """PTB3 quote style: opening quotes become ` and ``, closing ones ' and ''."""

    def action(text: str) -> tuple[str | None, int]:
        text = _SINGLE.sub("`" if probably_left else "'", text)
        text = _DOUBLE.sub("``" if probably_left else "''", text)
        text = _LEFT_SINGLE.sub("`", text)
        text = _RIGHT_SINGLE.sub("'", text)
        text = _LEFT_DOUBLE.sub("``", text)
        return _RIGHT_DOUBLE.sub("''", text), 0

    return action


def _acronym_before_sentence(text: str) -> tuple[str | None, int]:
    """An acronym before "The", "A", ... also ends the sentence: its period is lexed again.

    A one-letter one ("A." before "The") gives the letter alone, the period coming next.
    """
    if len(text) == 2:
        return text[0], 1
    return text, 1


def _hyphens(text: str) -> tuple[str | None, int]:
    """Three or four hyphens are a PTB dash "--"; other runs stay as written."""
    return ("--" if 3 <= len(text) <= 4 else text), 0


# ---------------------------------------------------------------------------------------------
# The rules, in the order of PTBLexer.flex (order breaks ties between equally long matches).
# Each: (pattern, trailing context or None, action). Rules for the strictTreebank3 state,
# which coco-caption never enters, are left out.
# ---------------------------------------------------------------------------------------------
_RULES_SRC: list[tuple[str, str | None, Action]] = [
    # Names with symbols, then assimilations PTB splits ("cannot" -> "can" "not").
    (r"c[+][+]", None, _emit),
    (r"(?:c|f)#", None, _emit),
    (r"cannot", None, _split_after(3)),
    (r"'twas", None, _split_after(2)),
    (r"'tis", None, _split_after(2)),
    (r"gonna|gotta|lemme|gimme|wanna", None, _split_after(3)),
    # Markup and character entities of the SGML corpora the lexer was built for.
    ("{SGML}", None, lambda t: (_space_to_nbsp(t), 0)),
    ("{SPMDASH}", None, _const("--")),
    ("{SPAMP}", None, _normalize_amp),
    ("{SPPUNC}", None, _emit),
    # Words, stopping before a clitic: "dog" + "'s", "do" + "n't"; words with apostrophes.
    ("{WORD}", "{REDAUX}", _remove_soft_hyphens),
    ("{SWORD}", "{SREDAUX}", _remove_soft_hyphens),
    ("{WORD}", None, _remove_soft_hyphens),
    ("{APOWORD}", None, _emit),
    ("{APOWORD2}", "{JLETTER}", _emit),
    # URLs, e-mail addresses, @names and #tags stay whole.
    ("{FULLURL}", None, _emit),
    ("{LIKELYURL}", None, _emit),
    ("{EMAIL}", None, _emit),
    ("{TWITTER}", None, _emit),
    # The clitics themselves ("'s", "n't"), curly apostrophes made straight.
    ("{REDAUX}", "[^A-Za-z]", _latex_quotes(False)),
    ("{SREDAUX}", "[^A-Za-z]", _latex_quotes(False)),
    # Dates, numbers with decimals or thousands, fractions, currency signs.
    ("{DATE}", None, _emit),
    ("{NUMBER}", None, _remove_soft_hyphens),
    ("{SUBSUPNUM}", None, _emit),
    ("{FRAC}", None, lambda t: (_space_to_nbsp(t), 0)),
    ("{FRAC2}", None, lambda t: (_FRACTIONS.get(t, t), 0)),
    ("{TBSPEC}", None, _normalize_amp),
    ("{THING3}", None, _emit),
    ("{DOLSIGN}", None, _emit),
    ("{DOLSIGN2}", None, lambda t: (_CURRENCY.get(t, t), 0)),
    # Abbreviations keep their period ("mr.", "u.s.", "etc."), decided by what follows.
    ("{ACRONYM}", "(?:{SPACENLS})(?:{SENTSTARTWORD}){SPACENL}", _acronym_before_sentence),
    ("{ABBREV3}", "(?:{SPACENL})?{JDIGIT}", _emit),
    (r"(?:pt[eyEY]|co)\.", "{SPACE}(?:ltd|lim)", _emit),
    ("{ABBREV1}", "{SENTEND}", _period_again),
    ("{ABBREV1}", r"[\s\S][\s\S]", _emit),
    ("{ABBREV1}", None, _period_again),
    ("{ABBREV2}", None, _emit),
    ("{ABBREV4}", "{SPACE}", _emit),
    ("{ACRO}", "{SPACENL}", _emit),
    ("{TBSPEC2}", "{SPACENL}", _emit),
    ("{FILENAME}", "{SPACENL}|[.?!,]", _emit),
    (r"{WORD}\.", "{INSENTP}", _remove_soft_hyphens),
    # Phone numbers, then quotes: a double quote before a word opens (``), else closes ('').
    ("{PHONE}", None, lambda t: (_parens(_space_to_nbsp(t)), 0)),
    ("{DBLQUOT}", "[A-Za-z0-9$]", _latex_quotes(True)),
    ("{DBLQUOT}", None, _latex_quotes(False)),
    (r"\x7f", None, _skip),
    ("<|&lt;", None, _const("<")),
    (">|&gt;", None, _const(">")),
    # Smileys, then brackets as PTB names them (-LRB- ...), dashes, ellipses, punctuation.
    ("{SMILEY}", "[^A-Za-z0-9]", lambda t: (_parens(t), 0)),
    ("{ASIANSMILEY}", None, lambda t: (_parens(t), 0)),
    (r"\{", None, _const("-LCB-")),
    (r"\}", None, _const("-RCB-")),
    (r"\[", None, _const("-LSB-")),
    (r"\]", None, _const("-RSB-")),
    (r"\(", None, _const("-LRB-")),
    (r"\)", None, _const("-RRB-")),
    (r"-+", None, _hyphens),
    ("{LDOTS}", None, _const("...")),
    ("{FNMARKS}", None, _emit),
    ("{ASTS}", None, _emit),
    ("{INSENTP}", None, _emit),
    (r"[?!]+", None, _emit),
    ("[.\u00a1\u00bf\u037e\u0589\u061f\u06d4\u0700-\u0702\u07fa\u3002]", None, _emit),
    ("=", None, _emit),
    ("/", None, _emit),
    # Hyphenated words stay whole ("t-shirt", "3-year-old"), as the Treebank has them.
    (r"{HTHING}\.", "{INSENTP}", _remove_soft_hyphens),
    ("{HTHING}", None, _remove_soft_hyphens),
    (r"{THING}\.", "{INSENTP}", _emit),
    ("{THING}", None, _emit),
    (r"{THINGA}\.", "{INSENTP}", _normalize_amp),
    ("{THINGA}", None, _normalize_amp),
    # An apostrophe before a word opens a quote; other quotes close.
    ("'", r"[A-Za-z][^ \t\n\r\u00A0]", _latex_quotes(True)),
    ("{REDAUX}", None, _latex_quotes(False)),
    ("{SREDAUX}", None, _latex_quotes(False)),
    ("{QUOTES}", None, _latex_quotes(False)),
    # Symbols; whitespace and invisible characters; line ends; anything else is deleted.
    ("<<|>>", None, _emit),
    ("{MISCSYMBOL}", None, _emit),
    ("\\x00|{SPACES}|[\u200b\u200e\u200f\ufeff]", None, _skip),
    ("{NEWLINE}", None, _const(NEWLINE_TOKEN)),
    ("&nbsp;", None, _skip),
    (r"[^\n]", None, _skip),
]


@dataclass(frozen=True)
class _Rule:
    whole: regex.Pattern  # r1 followed by its trailing context, matched leftmost-longest
    head: regex.Pattern | None  # r1 alone, to find where a trailing context starts
    tail: regex.Pattern | None
    action: Action


def _expand(pattern: str) -> str:
    for key, value in _M.items():
        pattern = pattern.replace("{" + key + "}", f"(?:{value})")
    return _caseless(pattern)


def _compile(head: str, tail: str | None, action: Action) -> _Rule:
    h = _expand(head)
    if tail is None:
        return _Rule(regex.compile(h, regex.POSIX), None, None, action)
    t = _expand(tail)
    return _Rule(
        regex.compile(f"(?:{h})(?:{t})", regex.POSIX),
        regex.compile(h),
        regex.compile(t),
        action,
    )


_RULES = [_compile(h, t, a) for h, t, a in _RULES_SRC]


# A run of ASCII letters followed by a space, a newline or the end is always one token, the
# run itself, except for the assimilations split above ("cannot" -> "can" "not"): no other
# rule can match more than such a run without a non-letter in it. Most caption words are such
# runs, so they skip the rule search.
_PLAIN_WORD = regex.compile(r"[A-Za-z]+(?=[ \n]|\Z)")
_ASSIMILATIONS = {"cannot", "gonna", "gotta", "lemme", "gimme", "wanna"}
# Only the SPACES rule can match at a space or tab, and it takes the whole run of spaces, no-break
# spaces included (a run starting at U+00A0 is different: a "likely URL" may start there).
_SPACE_RUN = regex.compile(r"[ \t\u00A0\u2000-\u200A\u3000]+")
_CANDIDATES: dict[str, tuple[_Rule, ...]] = {}


def _candidates(first: str) -> tuple[_Rule, ...]:
    """The rules that can match something starting with ``first`` (cached per character)."""
    rules = _CANDIDATES.get(first)
    if rules is None:
        rules = tuple(r for r in _RULES if r.whole.match(first, partial=True))
        _CANDIDATES[first] = rules
    return rules


def _window_end(units: str, pos: int) -> int:
    """Where the rules may stop looking when lexing the line holding ``pos``.

    Rules see past a line's end only through whitespace into the next caption with text (an
    acronym's sentence-final test reads its first word and the character after it), so the
    search ends after that line. Matching with that bound keeps lexing linear: the regex
    engine otherwise scans to the end of the batch for a literal a rule needs, such as "-".
    """
    end = units.find("\n", pos)
    while end != -1:
        nxt = units.find("\n", end + 1)
        if units[end + 1 : len(units) if nxt == -1 else nxt].strip():
            return len(units) if nxt == -1 else nxt + 1
        end = nxt
    return len(units)


def _lex(units: str) -> list[str]:
    """Run the emulated scanner over UTF-16 code units; return tokens with NEWLINE_TOKEN."""
    tokens: list[str] = []
    pos, n = 0, len(units)
    line_end = stop = -1
    while pos < n:
        if pos > line_end:
            nl = units.find("\n", pos)
            line_end = n if nl == -1 else nl
            stop = _window_end(units, pos)
        if units[pos] in " \t":
            pos = _SPACE_RUN.match(units, pos).end()
            continue
        m = _PLAIN_WORD.match(units, pos, stop)
        if m is not None and m.group().lower() not in _ASSIMILATIONS:
            tokens.append(m.group())
            pos = m.end()
            continue
        best_len, best = -1, None
        for rule in _candidates(units[pos]):
            m = rule.whole.match(units, pos, stop)
            if m is not None and m.end() - pos > best_len:
                best_len, best = m.end() - pos, rule
        assert best is not None  # the catch-all rule matches any character but "\n"
        end = pos + best_len
        if best.head is not None:
            # JFlex 1.4 ends r1 at the rightmost place where r1 matches before it and the
            # trailing context matches after it.
            end = next(
                p
                for p in range(end, pos - 1, -1)
                if best.head.fullmatch(units, pos, p) and best.tail.fullmatch(units, p, end)
            )
        token, pushback = best.action(units[pos:end])
        if token is not None:
            tokens.append(token)
        pos = end - pushback
    return tokens


def _to_units(text: str) -> str:
    """Java strings are UTF-16: split characters beyond U+FFFF into their two surrogates."""
    if text.isascii() or max(text) <= "\uffff":
        return text
    raw = text.encode("utf-16-le")
    return "".join(chr(int.from_bytes(raw[i : i + 2], "little")) for i in range(0, len(raw), 2))


def _from_units(units: str) -> str:
    if not any("\ud800" <= c <= "\udfff" for c in units):
        return units
    return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


# Java's ConditionalSpecialCasing.isCased: a cased letter, or one of its Other_Lowercase /
# Other_Uppercase ranges (a fixed, older list than Python's str.islower knows).
_JAVA_OTHER_CASED = regex.compile(
    "[\u02b0-\u02b8\u02c0\u02c1\u02e0-\u02e4\u0345\u037a\u1d2c-\u1d61\u2160-\u217f\u24b6-\u24e9]"
)


def _is_cased(c: str) -> bool:
    return unicodedata.category(c) in ("Ll", "Lu", "Lt") or bool(_JAVA_OTHER_CASED.match(c))


# java.text.BreakIterator's word segments (the JDK's legacy WordBreakRules: words and numbers
# glued by inner punctuation, runs of kana or kanji, ...). Java decides σ or ς within them.
_CJK = (
    "\u3005\u4e00-\u9fa5\uf900-\ufa2d\u30a1-\u30fa\u30fd\u30fe\u3041-\u3094\u309d\u309e"
    "\u3099-\u309c\u30fb\u30fc"
)
_LET = rf"(?:(?![{_CJK}])[\p{{L}}\p{{Mc}}][\p{{Mn}}\p{{Me}}]*)"
_WORD = rf"(?:{_LET}+(?:[\p{{Pd}}\p{{Pc}}\u00ad\u2027\"'.]{_LET}+)*[\u0964\u0965]?)"
_NUMBER = r"(?:(?:\p{N}[\p{Mn}\p{Me}]*)+(?:[\"',\u066b.](?:\p{N}[\p{Mn}\p{Me}]*)+)*)"
_TAIL = rf"(?:{_NUMBER}{_WORD})*(?:{_NUMBER}[%&\u00a2\u066a\u2030\u2031]?)?"
_JAVA_SEGMENT = regex.compile(
    rf"{_WORD}?{_TAIL}|(?:[\p{{Sc}}#.](?<!\u00a2)){_TAIL}|[\p{{Zs}}\t]*\r?[\n\f\u2028\u2029]?"
    r"|[\u30a1-\u30fa\u30fd\u30fe\u3099-\u309c\u30fb\u30fc]+"
    r"|[\u3041-\u3094\u309d\u309e\u3099-\u309c\u30fb\u30fc]+|[\u3005\u4e00-\u9fa5\uf900-\ufa2d]+"
    r"|[^\p{Mn}\p{Me}\p{Cc}\p{Cf}\p{Zl}\p{Zp}][\p{Mn}\p{Me}]+|.",
    regex.POSIX | regex.DOTALL,
)


# Letters whose case pair Unicode 14 added: Python 3.11 lower-cases them, Java 17 (Unicode 13)
# does not. (The lexer deletes them as unknown, so they only survive inside a URL or e-mail.)
_NEW_CASE_PAIRS = (
    frozenset("\u2c2f\ua7c0\ua7d0\ua7d6\ua7d8")
    | frozenset(
        map(chr, [*range(0x10570, 0x1057B), *range(0x1057C, 0x1058B), *range(0x1058C, 0x10593)])
    )
    | frozenset("\U00010594\U00010595")
)


def _bmp_stand_in(c: str) -> str:
    """A character the segmenting regex treats as Java treats ``c``; U+FFFF stands alone."""
    kind = unicodedata.category(c)
    if kind == "Cn":
        return "\uffff"
    if c > "\uffff":
        return {"L": "\u05d0", "N": "0", "M": "\u0301"}.get(kind[0], "\uffff")
    return c


def _java_segments(text: str) -> list[tuple[int, int]]:
    """Java's word segments (java.text.BreakIterator, legacy rules) as (start, end) pairs.

    Characters this Python does not know are separate segments, like Java's unknowns. A
    letter, digit or mark beyond U+FFFF takes part in a word as such but always ends it.
    """
    probe = "".join(map(_bmp_stand_in, text))
    segments, pos = [], 0
    while pos < len(text):
        stop = next((i + 1 for i in range(pos, len(text)) if text[i] > "\uffff"), len(text))
        end = max(_JAVA_SEGMENT.match(probe, pos, stop).end(), pos + 1)
        segments.append((pos, end))
        pos = end
    return segments


def _final_sigmas(token: str) -> set[int]:
    """Where Java writes a final ς: a cased letter before the Σ in its word segment, none after.

    Java's segmenter skips format characters (but the soft hyphen counts as a hyphen).
    """
    keep = [i for i, c in enumerate(token) if c == "\u00ad" or unicodedata.category(c) != "Cf"]
    text = "".join(token[i] for i in keep)
    finals = set()
    for start, end in _java_segments(text):
        for k in range(start, end):
            if (
                text[k] == "\u03a3"
                and any(map(_is_cased, text[start:k]))
                and not any(map(_is_cased, text[k + 1 : end]))
            ):
                finals.add(keep[k])
    return finals


def _java_lower(token: str) -> str:
    """``String.toLowerCase(Locale.ENGLISH)`` of Java 17, which differs from ``str.lower``.

    Java places a final ς by its own word segments ("ΑΣ1" ends in ς, "ΑΣ-Β" does not; Python
    looks only at the letters touching the Σ) and knows fewer case pairs.
    """
    if "\u03a3" not in token and _NEW_CASE_PAIRS.isdisjoint(token):
        return token.lower()
    finals = _final_sigmas(token) if "\u03a3" in token else set()
    return "".join(
        "\u03c2" if i in finals else c if c in _NEW_CASE_PAIRS else c.lower()
        for i, c in enumerate(token)
    )


def ptb_tokens(captions: Sequence[str]) -> list[list[str]]:
    """CoreNLP's lower-cased PTB tokens of each caption, punctuation still in.

    Captions are lexed as one text, one caption a line (as coco-caption feeds them to Java);
    a newline inside a caption counts as a space (coco-caption replaces it). Other characters
    Java would take as line breaks (CR, VT, FF, U+2028, U+2029) also count as spaces here:
    coco-caption's wrapper would start a new line there and pair every later caption with the
    wrong image.
    """
    text = "\n".join(
        c.translate({0x0A: " ", 0x0D: " ", 0x0B: " ", 0x0C: " ", 0x2028: " ", 0x2029: " "})
        for c in captions
    )
    lines: list[list[str]] = [[]]
    for token in _lex(_to_units(text)):
        if token == NEWLINE_TOKEN:
            lines.append([])
        else:
            lines[-1].append(_java_lower(_from_units(token)))
    return lines


def ptb_tokenize_batch(captions: Sequence[str]) -> list[str]:
    """Tokenised captions, exactly as pycocoevalcap's PTBTokenizer.tokenize returns them.

    Tokens are joined by spaces and those in PUNCTUATIONS dropped. Pass all the captions that
    coco-caption tokenises in one call (all references, or all candidates), in its order: a
    caption's last token can depend on how the next caption starts.
    """
    out = []
    for tokens in ptb_tokens(captions):
        line = " ".join(tokens).rstrip().split(" ")
        out.append(" ".join(w for w in line if w not in PUNCTUATIONS))
    return out


def ptb_tokenize(caption: str) -> str:
    """One caption tokenised on its own (as if it were the last line coco-caption sent)."""
    return ptb_tokenize_batch([caption])[0]
