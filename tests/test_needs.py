"""Questions only a specific value answers: a count, an expansion, a name, a price, a port."""

from __future__ import annotations

import pytest

from chatbot.needs import asks_clock, asks_port, asks_price, needed_form

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "question",
    [
        "How much did Borland pay when it bought Ashton-Tate?",
        "What did it cost to build the JOHNNIAC computer at the time?",
        "I read about an old legend. How much was the recipe supposed to cost?",
        "what's the price of a license?",
        "Roughly how many dollars does it cost to pretrain a base model from scratch?",
    ],
)
def test_price_questions(question: str) -> None:
    assert asks_price(question)


@pytest.mark.parametrize(
    "question",
    [
        "Which techniques help cut the cost of fine-tuning a base model?",
        "When can a proprietary API model be the cheaper option?",
        "How much data does pre-training need?",
    ],
)
def test_questions_about_cost_that_ask_no_amount(question: str) -> None:
    assert not asks_price(question)


@pytest.mark.parametrize(
    "question",
    [
        "What TCP port does PostgreSQL listen on by default?",
        "whats the default port number for a minecraft server",
        "Which port number does an IRC server normally listen on?",
        "what port does redis use",
        "Which ports does FTP use?",
    ],
)
def test_port_questions(question: str) -> None:
    assert asks_port(question)


def test_a_port_to_another_machine_is_no_port_number() -> None:
    assert not asks_port("What port of Unix ran on the VAX first?")
    assert not asks_port("What is a port?")
    # the port is a word in what is asked, not the thing asked for
    assert not asks_port("which RFC defines port numbers now? i know 1700 is old")
    # a socket to plug a device into has no number
    assert not asks_port("what ports do data loggers usually plug into on a pc?")
    assert not asks_port("Which port does the printer cable connect to?")


def test_a_price_needs_an_amount_and_a_port_a_number() -> None:
    price = needed_form("How much did Borland pay for Ashton-Tate?")
    assert price is not None
    assert price("Borland sold Quattro Pro to Novell in 1994 for $100M.")
    assert price("The recipe was said to cost 250 dollars.")
    assert price("Emacs is free software.")
    assert price("Pre-training a large model from scratch is expensive.")  # said in words
    assert not price("Ashton-Tate was taken over by Borland in 1991.")  # a year is no price
    port = needed_form("What port does QMTP listen on?")
    assert port is not None
    assert port("QMTP listens on port 209 and is used by qmail.")
    assert port('The default "https" port number is 443, as assigned by the IANA.')
    assert not port("Any TCP or UDP port with a number in the range 1025 to 65535.")
    assert not port("Each application program has a unique port number associated with it.")


@pytest.mark.parametrize(
    ("question", "asked"),
    [
        ("How fast was the Hitachi HD6309 clocked, in MHz?", True),
        ("What clock speed did the Z80 run at?", True),
        ("what clock rate does the 6502 use", True),
        ("what is a clock?", False),
        ("How is the clock signal distributed?", False),
        ("Why do CPUs need a clock?", False),
    ],
)
def test_a_clock_rate_is_asked(question: str, asked: bool) -> None:
    assert asks_clock(question) is asked


def test_a_clock_rate_needs_a_frequency() -> None:
    clock = needed_form("How fast was the HD6309 clocked, in MHz?")
    assert clock is not None
    assert clock("The original IBM PC had a clock rate of 4.77 MHz.")
    assert clock("It ran at 1-2 GHz.")
    assert not clock("Hitachi's version of the Motorola 6809 microprocessor.")


def test_other_questions_need_no_form() -> None:
    assert needed_form("What is a port?") is None
    assert needed_form("Why was Ashton-Tate sold?") is None


def test_how_many_dollars_needs_an_amount_not_any_count() -> None:
    need = needed_form("How many dollars does a pretraining run cost?")
    assert need is not None
    assert not need("Models are pre-trained on trillions of tokens of text data.")
    assert need("The run cost about $4.6 million.")
    assert not need("Pre-training a large model is expensive.")  # the cost, but no amount
