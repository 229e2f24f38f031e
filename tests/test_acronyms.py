"""Acronyms asked about, and the sentences that spell them out."""

from __future__ import annotations

import pytest

from chatbot.acronyms import asked_expansion, spells_out

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("question", "acronym"),
    [
        ("What does the CRFM in 'Stanford CRFM' actually stand for?", "CRFM"),
        ("what does PEBKAC stand for? the helpdesk wrote it", "PEBKAC"),
        ("What is RAM short for?", "RAM"),
        ("What does LoRA stand for, and why use it?", "LoRA"),
        ("what does POTS mean??", ""),  # a meaning, not the letters
        ("What does the abbreviation in the title stand for?", ""),  # no acronym named
        ("clut stands for what in graphics hardware?", "clut"),
        ("what does the name of the ALIAS language stand for?", "ALIAS"),
        ("what is the full form of ISDN?", "ISDN"),
        ("What does the acronym ISDN mean?", "ISDN"),
        ("what is ISDN an abbreviation of?", "ISDN"),
        ("what does isdn stand for?", "isdn"),
        ("what does it stand for?", ""),  # a pronoun: the rewrite names the term first
        ("it stands for what?", ""),
        ("admd in x.400, what's that short for?", "admd"),
        ("whats ADMD short for in x.400?", "ADMD"),  # chat spelling
        ("What does the CRYSTAL language's name stand for?", "CRYSTAL"),
        ("so in the RFC, what does that stand for?", ""),  # no acronym named
        ("what does gcc actually stand for these days?", "gcc"),
    ],
)
def test_the_acronym_whose_expansion_is_asked(question: str, acronym: str) -> None:
    assert asked_expansion(question) == acronym


@pytest.mark.parametrize(
    ("sentence", "acronym", "spelled"),
    [
        ("Stanford Center for Research on Foundation Models (CRFM)", "CRFM", True),
        ('Shorthand for "Problem (Exists) between Chair and Keyboard"', "PEBKAC", True),
        ("Low-Rank Adaptation of large models", "LoRA", True),
        ("random access memory", "RAM", True),
        ("Extensible Markup Language", "XML", True),
        ("the mail exchange record", "MX", True),
        ("The term was introduced in a 2021 Stanford CRFM paper", "CRFM", False),
        ("A memory-resident program which mimics a disk", "RAM", False),  # "A" is small
        ("There are many kinds of memory", "RAM", False),  # the r of "There" is not its start
        ("problem exists between chair and keyboard", "PEBKAC", False),  # reordered: capitals
        ("Administration Management Domain", "ADMD", True),  # "AD" from one word
        ("FORmula TRANslation", "FORTRAN", True),
        ("administration management domain", "ADMD", False),  # prefixes: capitalised words
        ("ALgorIthmic ASsembly language", "ALIAS", True),  # the capitals spell it
        ("Concurrent Representation of Your Space-Time ALgorithms.", "CRYSTAL", True),
        ("SLD resolution is a rule of inference", "SLD", False),  # the acronym itself
        ("The term comes from a 2021 Stanford CRFM paper", "CRFM", False),
        ("DDT /D·D·T/, n.", "DDT", False),  # how it is said, letter by letter
    ],
)
def test_what_spells_an_acronym_out(sentence: str, acronym: str, spelled: bool) -> None:
    assert spells_out(sentence, acronym) is spelled
