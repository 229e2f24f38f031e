"""The kind of fact a question asks for, and whether a sentence holds or states it."""

from __future__ import annotations

import pytest

from chatbot.kinds import (
    ORIGIN,
    answer_type,
    asked_types,
    asks_alias,
    asks_opinion,
    asks_origin,
    asks_parts,
    asks_people,
    asks_term,
    holds_type,
    names_person,
    type_strength,
)
from chatbot.text import respell


@pytest.mark.parametrize(
    ("question", "kinds"),
    [
        ("Who wrote Bison?", ["person"]),
        ("Which companies came up with the ACPI standard?", ["person"]),
        ("Which AI company makes the Claude models?", ["person"]),
        ("What research lab published the paper?", ["person"]),
        ("Which data types can foundation models work with?", ["other"]),
        ("When was refuctoring coined, and by whom?", ["time", "person"]),
        ("Who coined the word, and why did he not use the old term?", ["person", "reason"]),
        ("MySQL is named after somebody's daughter. Whose?", ["person"]),
        ("In functional programming, can every function be listless?", ["yesno"]),
        ("Back in the mid-1990s, were mind mice accurate enough?", ["yesno"]),
        ("quick check: will A* always find the cheapest path first?", ["yesno"]),
        ("honest question - does A* always find the cheapest path?", ["yesno"]),
        ("On Ethernet, what are hosts supposed to do after a collision?", ["other"]),
        ("On Ethernet, what is copycenter supposed to mean?", ["other", "definition"]),
        ("What does it give, and what is it supposed to be for?", ["other", "definition"]),
        ("What's a quine, and who is it named after?", ["other", "person", "definition"]),
        ("As of 1997, how much data could a DLT cartridge hold?", ["number"]),
        ("Could you give some examples of open-weight models?", ["example"]),
        ("Could you tell me about open-weight models?", ["other"]),
        ("What is a space leak and what usually causes one?", ["other", "reason", "definition"]),
        ("What is a space leak?", ["other"]),
        ("When did Google first release Gemini?", ["time"]),
        ("When is the kernel first released?", ["time"]),
        ("When should a team fine-tune a base model?", ["situation"]),
        ("Who created Rust, and when?", ["person", "time"]),
        ("The tool was a hit. On roughly how many PCs was it in use?", ["number"]),
        ("And who wrote it?", ["person"]),
        ("In practice, at what point do teams worry about it?", ["situation"]),
        ("Under which circumstances is an API model cheaper?", ["situation"]),
        (
            "what does vaxectomy mean and what word is it a pun on?",
            ["other", "reason", "definition"],
        ),
        ("What is the origin of the name Yerk?", ["reason"]),
        ("Where does the name come from, and what does it mean?", ["reason", "definition"]),
        ("In hacker slang, what does 'a clear win' mean?", ["other", "definition"]),
        ("Is it a play on words?", ["yesno"]),
        ("Where does the word 'job' for computer work come from?", ["reason"]),
        ("how did Bison get its name?", ["reason"]),
        ("What is abduction used for? Give a few applications.", ["example"]),
        ("what are some applications of abduction?", ["example"]),
        ("Who wrote Bison? Give me some background.", ["person"]),
        # chat spelling, a name before a dash, a hedge before "what years"
        ("wat year did gopher come out?", ["time"]),
        ("Christopher Strachey - when did he die?", ["time"]),
        ("sld resolution - what does SLD stand for?", ["other"]),
        ("Which models started it, and around what years did that happen?", ["other", "time"]),
        ("why do devs need guardrails - what's the goal there?", ["reason"]),
        # a place: where a thing is, was made or was born; not where a field is heading
        ("Where was the game Zork originally written, and roughly when?", ["place", "time"]),
        ("Where and when was CU-SeeMe developed?", ["place", "time"]),
        ("When and where was the first @-party held?", ["time", "place"]),
        ("Simonyi - where was he born and in what year?", ["place", "time"]),
        ("In which city is Iomega headquartered?", ["place"]),
        ("Where is the foundation model field heading now?", ["other"]),
    ],
)
def test_the_kinds_of_fact_a_question_asks_for(question: str, kinds: list[str]) -> None:
    assert asked_types(question) == kinds
    assert answer_type(question) == kinds[0]


def test_a_stated_fact_is_stronger_than_a_held_one() -> None:
    assert type_strength("It was written by Robert Corbett.", "person") == 1.0
    assert type_strength("Developed by Quantum Corporation, ATA-4 is licensed.", "person") == 1.0
    assert type_strength("The log entry (from September 9, 1947) reads ...", "time") == 1.0
    assert (
        type_strength("Bison will no longer apply the GNU General Public License.", "person") == 0.5
    )
    assert type_strength("Bison runs under Unix.", "person") == 0.0
    assert type_strength("A mainframe first delivered in 1964.", "time") == 1.0
    assert type_strength("In November 2006, YouTube was bought by Google.", "time") == 1.0
    assert type_strength("Gene Amdahl is acknowledged as the chief architect.", "person") == 0.5
    assert type_strength("Simonyi was born in Budapest in 1948.", "place") == 1.0
    assert type_strength("Zork was originally written on MIT-DM in the 1970s.", "place") == 0.5
    assert type_strength("The headquarters of Iomega are Roy, Utah, USA.", "place") == 0.5
    assert type_strength("This originated in Zork but has spread to nethack.", "place") == 0.0
    assert type_strength("It was first released in May 1990.", "place") == 0.0


def test_a_maker_named_by_a_possessive_is_a_name() -> None:
    """ "Which company makes Claude?" is answered by "proprietary models such as Anthropic's
    Claude", not by a sentence that merely holds two capitalised words."""
    said = "Proprietary models such as OpenAI's GPT and Anthropic's Claude are accessible by API."
    assert holds_type(said, "person")
    assert not holds_type("the model's weights are public.", "person")
    assert holds_type("OpenAI, Anthropic, Google, and Cohere are primary providers.", "person")
    assert not holds_type("Models now cover text, images, audio, and code.", "person")


def test_a_year_or_a_date_is_not_an_asked_quantity() -> None:
    assert not holds_type("A standard from December 1985, revised on 1997-05-15.", "number")
    assert holds_type("It has 64 KB of RAM.", "number")
    assert holds_type("There are four levels, A, B, C and D.", "number")
    assert holds_type("It stores 35 gigabytes on a single cartridge.", "number")
    assert holds_type("The committee had seventeen members.", "number")
    assert holds_type("It uses sixty-four registers.", "number")
    assert not holds_type("One of the oldest languages still in use.", "number")
    assert holds_type("Addressing used an 18-bit segment.", "number")  # a hyphenated unit
    assert not holds_type("DOD standard 5200.28-STD, December 1985.", "number")  # a code
    assert holds_type("By processing petabytes of text, they learn.", "number")  # a magnitude
    assert not holds_type("A gigabyte is a unit.", "number")  # a unit named, no amount


@pytest.mark.parametrize(
    ("sentence", "settles"),
    [
        ("It is not in the public domain.", True),
        ("It had no garbage collection.", True),
        ("Yes, through few-shot prompting you can guide it.", True),
        ("The decompression algorithms aren't patented.", True),
        ("A property of variables in a functional language.", False),
    ],
)
def test_what_settles_a_yes_no_question(sentence: str, settles: bool) -> None:
    assert holds_type(sentence, "yesno") is settles


def test_an_origin_is_a_reason() -> None:
    assert holds_type("This term originates from a time when users submitted decks.", "reason")
    assert holds_type("The reference is to divination from the entrails.", "reason")
    assert not holds_type("A job is all the work done for one user.", "reason")


@pytest.mark.parametrize(
    "question",
    [
        "Intel blamed cosmic rays. What turned out to be the real cause?",
        "What was the cause of the outage?",
        "what are the reasons for this?",
    ],
)
def test_a_cause_asked_for_is_a_reason(question: str) -> None:
    assert answer_type(question) == "reason"


def test_where_a_word_comes_from_is_a_reason() -> None:
    assert holds_type("From VAD, a permutation of ADV, i.e. ADVENT.", "reason")
    assert holds_type("The name is a pun on the older Bourne shell.", "reason")
    assert holds_type('From the Greek "kybernetes", a steersman.', "reason")
    assert not holds_type("from the start the language was interpreted.", "reason")
    assert not holds_type("Data moves from one buffer to another.", "reason")


@pytest.mark.parametrize(
    ("question", "alias"),
    [
        ("what else are quantum dots called?", True),
        ("Is there another name for a zombie process?", True),
        ("What is a zombie process also known as?", True),
        ("What is a zombie process?", False),
        ("What are the other parts of a process?", False),
    ],
)
def test_which_questions_ask_for_another_name(question: str, alias: bool) -> None:
    assert asks_alias(question) is alias


@pytest.mark.parametrize(
    ("question", "origin"),
    [
        ('Where does the word "boot" for starting up a computer come from?', True),
        ("how did Bison get its name?", True),
        ("What is the etymology of spam?", True),
        ("Why is an address listing every hop called a source route?", True),
        ("Where does the data come from?", False),
        ("Why is a cache fast?", False),
        ("Who named it?", False),
    ],
)
def test_which_questions_ask_where_a_name_comes_from(question: str, origin: bool) -> None:
    assert asks_origin(question) is origin


def test_what_says_where_a_name_comes_from() -> None:
    assert ORIGIN.search('From the curious expression "to pull oneself up by one\'s bootstraps".')
    assert ORIGIN.search("It is called a source route, because the route is set at the source.")
    assert ORIGIN.search("Named after the Prime Minister.")
    assert ORIGIN.search("The name EPOC came from epoch, the beginning of an era.")
    assert ORIGIN.search("The language took its name from the island.")
    assert not ORIGIN.search("From the point of view of the user, it is fast.")
    assert not ORIGIN.search("The route is determined at the source, because hops are slow.")


def test_what_a_thing_makes_possible_is_a_reason_to_use_it() -> None:
    assert holds_type("This allows the process to read a file at random offsets.", "reason")
    assert holds_type("A cache, which lets a program skip the disk.", "reason")
    assert not holds_type("The policy allows two users per licence.", "reason")  # no "why"


@pytest.mark.parametrize(
    ("sentence", "gives"),
    [
        ("Examples include Python and Ruby.", True),
        ("Applications include fault diagnosis, plan formation and default reasoning.", True),
        ("C's derived types are the array, function, pointer, structure, and union.", True),
        ("It runs on Unix and Windows.", False),
        ("A type built from primitive types.", False),
    ],
)
def test_what_gives_examples(sentence: str, gives: bool) -> None:
    """Examples are named ("such as", "include") or listed (three or more, then and/or)."""
    assert holds_type(sentence, "example") is gives


@pytest.mark.parametrize(
    ("question", "opinion"),
    [
        ("Which foundation model do you personally think is the best one for coding?", True),
        ("In your opinion, is TypeScript worth adopting?", True),
        ("What's your favourite base model?", True),
        ("in your honest view, should I fine-tune?", True),
        ("What do you think a base model is?", False),  # asks what it is
        ("Which model would you recommend for a chatbot?", False),  # the glossary may say
        ("Is a base model good for chatbots?", False),
        ("What is an opinion mining system?", False),
    ],
)
def test_what_asks_for_the_bots_own_opinion(question: str, opinion: bool) -> None:
    assert asks_opinion(question) is opinion


@pytest.mark.parametrize(
    ("question", "term"),
    [
        ("What do you call the companies that provide internet telephony services?", True),
        ("whats the term for a wrong tech prediction?", True),
        ("whats the name of microsofts set of c++ classes that wrap windows?", True),
        ("What is it called when a model forgets what it learned?", True),
        ("Which term describes a model trained on broad data?", True),
        ("What is a foundation model?", False),
        ("why do people call it a bug?", False),
        ("what's the hacker slang for digging through a core dump?", True),
        ("whats the hacker slang word for a linear interpolation?", True),
        ("whats the old IBM slang term for middle managers and HQ staff?", True),
        ("What's the name of the training approach where a model learns on its own?", True),
        ("What is the name of the file?", False),
        ("Is there a programming language that's basically BASIC with a database?", True),
        ("In logic some values exceed 1. Is there a name for that?", True),
        ("is there a way to tune a model without changing its weights?", False),
    ],
)
def test_what_asks_for_the_name_of_a_thing(question: str, term: bool) -> None:
    assert asks_term(question) is term


@pytest.mark.parametrize(
    ("question", "people"),
    [
        ("Who were the authors of the Stanford paper?", True),
        ("Who were the lead authors of the Stanford paper?", True),
        ("who were the actual authors of the 2021 stanford paper?", True),
        ("Which two people wrote SATAN?", True),
        ("Which science-fiction author made the name popular?", True),
        ("Who coined the term?", False),  # an organisation may answer it
        ("Who ended up buying the company founded by ex-Intel people?", False),
        # people doing the asking verb are its subject, not the fact asked for
        ("What do people mean when they say they ran a 'smoke test'?", False),
        ("What did the researchers find?", False),
    ],
)
def test_which_questions_ask_for_people_by_a_word_for_them(question: str, people: bool) -> None:
    assert asks_people(question) is people


@pytest.mark.parametrize(
    ("sentence", "names"),
    [
        ("It was written by Robert Corbett.", True),
        ("A very early attempt by Arthur W. Burks to express machine language.", True),
        ("Developed by Goos and Wulf at CMU in 1981.", True),
        ("Lindqvist & Berg, Uppsala.", True),  # a dictionary's attribution line
        ("The term, coined by Stanford University in 2021, draws an analogy.", False),
        ("The term was introduced in a 2021 Stanford CRFM paper.", False),
        ("Foundation Model refers to an AI model.", False),
    ],
)
def test_a_person_named_not_an_organisation(sentence: str, names: bool) -> None:
    assert names_person(sentence) is names


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("wat does f2f mean", "what does f2f mean"),
        ("whats a netmask", "what is a netmask"),
        ("wat r lora and qlora for", "what are lora and qlora for"),
        ("why doesnt the 486SX have an FPU", "why doesn't the 486SX have an FPU"),
        ("What is R?", "What is R?"),  # the R language stays
        ("Whos the author?", "who is the author?"),
        ("what do ppl mean by foundation model", "what do people mean by foundation model"),
    ],
)
def test_chat_spelling_of_question_words_is_written_out(typed: str, read: str) -> None:
    assert respell(typed) == read


@pytest.mark.parametrize(
    ("question", "parts"),
    [
        ("When did occam 2 come out, and what did it add to the original occam?", True),
        ("What is CC++? Is it a whole new language or something added on top of C++?", True),
        ("Who developed JOSS, and when?", False),  # both kinds are named: no part untyped
        ("What is a space leak, and why does it happen?", False),
        ("Who wrote Bison?", False),
    ],
)
def test_a_second_part_no_kind_names(question: str, parts: bool) -> None:
    assert asks_parts(question) is parts


def test_people_as_the_subject_ask_for_no_person() -> None:
    assert answer_type("What do people mean by a 'smoke test'?") != "person"
    assert answer_type("What do most people call a bad forecast?") != "person"
    assert answer_type("Which company made the Z80?") == "person"


def test_a_kind_of_company_asks_what_it_is_not_who() -> None:
    """ "What kind of organisation is the CIX?" is answered by "a non-profit trade
    association", not by the sentence naming its members."""
    assert answer_type("what kind of organisation is the Commercial Internet Exchange?") == "other"
    assert answer_type("What type of company is Iomega?") == "other"
    assert answer_type("Which kind of lab is PARC?") == "other"
    assert answer_type("Which lab made PARC's mouse?") == "person"
