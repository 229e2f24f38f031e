"""The form of sentence that alone answers some questions.

"How many ...?" is answered by a quantity, "What does CRFM stand for?" by a sentence spelling it
out, "Who were the authors?" by a person's name, "How much did X cost?" by an amount of money
(or "expensive"), "What port does Redis listen on?" by a port number, and "How fast was the
HD6309 clocked?" by a frequency. When none of the passages read holds such a sentence, the
glossary does not answer the question, however close its passages are: "Each application
program has a unique port number ..." is on topic and answers nothing. These needs are read
from the question once, then tried on every candidate sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from chatbot.acronyms import asked_expansion, spells_out
from chatbot.kinds import asking, asks_count, asks_people, holds_type, names_person

# "How much did Borland pay for it?", "What did the JOHNNIAC cost to build?", "What's the price
# of ...?" ask for an amount; "Which techniques cut the cost of fine-tuning?" does not
_PRICE = re.compile(
    r"^how many (?:dollars|euros|pounds|bucks)\b|"
    r"^how much (?:\w+ ){0,2}?(?:does|did|do|would|will|is|was|were|are)\b[^?]*"
    r"\b(?:cost|costs|pay|paid|charge|charged|sell|sold|spend|spent)\b"
    r"|^what (?:does|did|would|will) (?:[\w'-]+ ){1,6}?cost\b"
    r"|^what(?:'s| is| was| were) the (?:\w+ )?(?:price|cost)\b",
    re.I,
)
# "$100M", "250 dollars", "£5", "free of charge": an amount, or none to pay; or the cost said
# in words ("Pre-training from scratch is expensive")
_MONEY = re.compile(
    r"[$£€¥]\s?\d|\b\d[\d,.]*\s*(?:[mkb]n?\b|million\b|billion\b|thousand\b)?\s*"
    r"(?:dollars|pounds|euros|yen|marks|francs|cents|usd|gbp|eur)\b|\bfree\b|\bno charge\b|"
    r"\b(?:expensive|inexpensive|cheap|cheaper|costly|low-cost|affordable)\b",
    re.I,
)
# "What TCP port does PostgreSQL listen on?", "the default port number for ...", not "What
# port of Unix ran on the VAX?" (a port to a machine), nor "Which RFC defines port numbers?"
# (the port is a word in what is asked, not the thing asked for)
_PORT = re.compile(
    r"^(?:what|which)(?:'s|\s+is|\s+are)?\s+(?:the\s+)?(?:(?:default|standard|usual|official|"
    r"well-known|tcp|udp)\s+)*ports?(?:\s+numbers?)?\b(?!\s+(?:of|to)\b)",
    re.I,
)
# a socket on a machine ("What ports do data loggers plug into on a PC?") has no number
_PLUG = re.compile(r"\b(?:plug\w*|connect\w*|cables?|sockets?|slots?|physical)\b", re.I)
# "port 209", "The default port number is 443", "443/tcp"
_PORT_NUMBER = re.compile(
    r"\bports? (?:numbers? )?(?:(?:is|was|are) )?\d+|\b\d+/(?:tcp|udp)\b|\b(?:tcp|udp) \d+\b", re.I
)
# "How fast was the HD6309 clocked, in MHz?", "What clock speed does X run at?": a frequency
_CLOCK = re.compile(
    r"\bclock(?:ed|s)?\b[^?]*\b(?:at|speed|rate|frequency)\b|\bclocked\b|\bclock (?:speed|rate)\b|"
    r"\b(?:in|how many) [kmg]hz\b",
    re.I,
)
_FREQUENCY = re.compile(r"\b\d[\d.,]*\s*(?:-\s*\d[\d.,]*\s*)?[kmg]hz\b|\bhertz\b", re.I)


def asks_price(question: str) -> bool:
    return bool(_PRICE.search(asking(question)))


def asks_port(question: str) -> bool:
    asked = asking(question)
    return bool(_PORT.search(asked)) and not _PLUG.search(asked)


def asks_clock(question: str) -> bool:
    return bool(_CLOCK.search(asking(question)))


def owned_value(question: str) -> bool:
    """A price, a port or a clock rate is the named thing's own: another entry's answers
    another question."""
    return asks_price(question) or asks_port(question) or asks_clock(question)


def needed_form(question: str) -> Callable[[str], bool] | None:
    """A test a sentence must pass to answer the question alone, or None when any may."""
    price, count = asks_price(question), asks_count(question)
    if price and count:  # "How many dollars ...?": an amount, not the cost in words
        return lambda text: bool(_MONEY.search(text)) and holds_type(text, "number")
    if price:
        return lambda text: bool(_MONEY.search(text))
    if count:
        return lambda text: holds_type(text, "number")
    if acronym := asked_expansion(question):
        return lambda text: spells_out(text, acronym)
    if asks_people(question):  # "Who were the authors?": not "coined by Stanford University"
        return names_person
    if asks_port(question):
        return lambda text: bool(_PORT_NUMBER.search(text))
    if asks_clock(question):
        return lambda text: bool(_FREQUENCY.search(text))
    return None
