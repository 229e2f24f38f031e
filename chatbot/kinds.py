"""The kind of fact a question asks for, and whether a sentence holds or states it.

"Who wrote Bison?" asks for a name, and "It was written by Robert Corbett" states one; "When
was X coined?" asks for a date; "When should a team fine-tune?" for a circumstance; "How many
...?" for a quantity. The reader ranks sentences by it, and the compose check makes sure a
composition keeps the asked fact. Patterns, not a model: a 135M model cannot be trusted to
tell, and these are cheap to read and to test.
"""

from __future__ import annotations

import re
from typing import Literal

from chatbot.text import question_sentences, respell

AnswerType = Literal[
    "person",
    "time",
    "place",
    "situation",
    "number",
    "reason",
    "yesno",
    "example",
    "definition",
    "other",
]
# "What do people mean by X?", "What did the researchers find?": people doing something are the
# question's subject, not the asked fact
_NOT_AUX = r"(?!(?:do|does|did|would|should|could|can|will|might|must|usually|often)\b)"
# "What are hosts supposed to do after ...?" asks what they do, not what they are
_DEFINITION = re.compile(
    r"^what(?: is| are| was| were|'s|’s) (?:a |an |the )?(?![^?]*\b(?:supposed|meant|expected) to "
    r"(?:do|happen|work)\b)\w|^what (?:does|do) [^?]{1,60} mean\b",
    re.I,
)
_TYPE_PATTERNS: list[tuple[AnswerType, re.Pattern[str]]] = [
    (
        "person",
        re.compile(
            # "what kind of company is X?" asks what X is, not who
            r"^(?:who|whom|whose|by whom)\b|^(?:in |at |for |from |of )?(?:which|what) "
            r"(?!(?:kinds?|types?|sorts?) of\b)"
            rf"(?:{_NOT_AUX}[\w-]+ ){{0,2}}?(?:person|people|company|companies|firm|"
            r"organi[sz]ation|author|scientist|university|lab|laboratory|institute|manufacturer|vendor)s?\b",
            re.I,
        ),
    ),
    (
        "time",
        re.compile(
            r"^(?:when (?:was|were|did|had)|(?:in )?(?:what|which) years?|since when)\b"
            r"|^when\W*$"  # "Who made X, and when?"
            r"|^when\b(?=.*\b(?:first|originally|released|introduced|invented|founded)\b)",
            re.I,
        ),
    ),
    # "When should I fine-tune?", "At what point do teams ...?": a circumstance, not a date
    (
        "situation",
        re.compile(
            r"^(?:when|at what (?:point|stage)|(?:in|under) (?:what|which) (?:situations?|cases?|"
            r"circumstances?|conditions?|scenarios?))\b",
            re.I,
        ),
    ),
    ("number", re.compile(r"^(?:how (?:many|much|big|large|long|fast|old|wide))\b", re.I)),
    (
        "reason",
        re.compile(
            r"^(?:why|how come|what (?:is|was|were|are|turned out to be) "
            r"(?:the |its |their )?(?:\w+ )?(?:reason|cause)s?)\b|"
            r"^where (?:does|did|do) [^?]{1,80}? (?:come from|originate)\b|"
            r"^how did [^?]{1,60}? get (?:its|their|the|this|that) name\b|"
            r"^what (?:usually |typically |often )?causes?\b|"
            r"^what (?:\w+ )?(?:is|was) (?:it|this|that|the \w+|\w+) "
            r"(?:a pun|a play|wordplay) on\b|"
            r"^what (?:is|was) the (?:origin|etymology) of\b",
            re.I,
        ),
    ),
    # "Where was Simonyi born?", "In which city ...?"; not where a name comes from (a reason,
    # above) nor where a field is heading
    (
        "place",
        re.compile(
            r"^where(?:\s+and\s+when)?\s+(?:is|was|are|were|did|does|do|has|had)\b"
            r"(?![^?]*\b(?:heading|head|going|shifting|moving|trending)\b)|"
            r"^(?:in |at )?(?:which|what) (?:city|country|town|state|place|location|site)\b",
            re.I,
        ),
    ),
    (
        "yesno",
        re.compile(
            r"^(?:is|are|was|were|can|could|does|do|did|should|will|would|has|have)\b", re.I
        ),
    ),
]
# later clauses of a question ("..., and by whom?") ask for more kinds of fact
_CLAUSE = re.compile(
    r"\s*(?:[,;]\s*(?:and\s+)?|\s+and\s+(?=(?:who|whom|by whom|when|where|why|what|"
    r"which|how|in what|in which)\b))",
    re.I,
)
_YEAR = re.compile(r"\b(?:1[5-9]\d\d|20\d\d)(?:-\d\d){0,2}s?\b")
# where a name comes from: "Named after ...", "From the curious expression ...", "From VAD, a
# permutation of ADV", "a play on ...", "stands for ..."
_ORIGIN = (
    r"\b(?:named (?:after|for|from)|comes? from|came from|(?:takes?|took) (?:its|their) name "
    r"from|derived from|so called|so-called|stands? for|"
    r"play on|by analogy|originat(?:es|ed|ing) (?:from|in|with)|derives? from|"
    r"(?:is|was) a reference to|the reference is to|alludes? to)\b|"
    r"^(?:named|called|so named)\b|\bcalled\b[^.]{1,60}\bbecause\b|"  # "Named during a game ..."
    r"(?-i:^From\s+(?:the\s+)?[A-Z\"'“])|^From\s+(?:the|an?)\s+(?:[\w-]+\s+){0,2}?"
    r"(?:expression|phrase|saying|idiom|word|name|initials)\b|"
    r"\b(?:a|an)\s+(?:permutation|contraction|corruption|blend|portmanteau|abbreviation|"
    r"shortening|pun)\s+(?:of|on|for)\b"
)
ORIGIN = re.compile(_ORIGIN, re.I)
# "Where does the word 'boot' come from?", "How did X get its name?", "the etymology of X"
_ASKS_ORIGIN = re.compile(
    r"\b(?:origin|etymology)\b|\bget (?:its|their|the|this|that) name\b|"
    r"\b(?:word|name|term|phrase|expression|acronym)\b.*\b(?:come from|originate)|"
    r"\b(?:come from|originate)\b.*\b(?:word|name|term|phrase|expression|acronym)\b|"
    r"\b(?:called|named)\b(?=.*\b(?:why|after|for)\b)|\bwhy\b.*\b(?:called|named)\b",
    re.I,
)


# "What else are quantum dots called?", "another name for X", "X is also known as what?"
_ASKS_ALIAS = re.compile(
    r"\bwhat else (?:is|are|was|were) .{1,60}? (?:called|known as)\b|"
    r"\b(?:an)?other (?:names?|words?|terms?) (?:for|of)\b|\balternative (?:names?|terms?)\b|"
    r"\b(?:also|otherwise) (?:known as|called)\b",
    re.I,
)


def asks_alias(question: str) -> bool:
    """Does the question ask for another name of the thing? FOLDOC gives it in a note,
    '(Or "single-electron transistor")', that the answer's prose leaves out."""
    return bool(_ASKS_ALIAS.search(question))


def asks_origin(question: str) -> bool:
    """Does the question ask where a name comes from? A sentence that says so answers it
    first, though the entry's definition shares more of the question's words."""
    return bool(_ASKS_ORIGIN.search(asking(question)))


# a sentence that gives a name: "..., a property known as transfer learning"
NAMES_IT = re.compile(
    r"\b(?:known as|called|termed|referred to as|dubbed)\s+(?:the\s+|an?\s+)?[\"“']?[\w-]", re.I
)

_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
)
HAS_TYPE: dict[AnswerType, re.Pattern[str]] = {
    "person": re.compile(
        r"\b(?:by|from|of|at|with)\s+(?:the\s+)?[A-Z][\w.-]+|(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+\s+"
        r"[A-Z][a-z]+|^(?!(?:The|A|An|In|It|Its|This|These|As|On|At|For|If|When|Unlike)\b)"
        r"[A-Z][a-z]+\s+(?:[A-Z]\.\s*)?[A-Z][a-z]+|\b[A-Z][\w-]*'s\s+[A-Z]"  # "Anthropic's Claude"
        r"|\b[A-Z][\w-]+,\s+[A-Z][\w-]+,(?:\s+[A-Z][\w-]+,)*\s+(?:and|or)\s+[A-Z]"  # "A, B, and C"
    ),
    "time": re.compile(rf"\b(?:1[5-9]\d\d|20\d\d)s?\b|\b{_MONTH}\b"),
    # where a thing is, was made or was born: "born in Budapest", "written on MIT-DM",
    # "The headquarters of Iomega are Roy, Utah"; not any "in" before a name ("in Zork")
    "place": re.compile(
        r"\b(?i:born|located|based|developed|written|founded|held|built|made|created|designed|"
        r"implemented|invented|working|worked|lived|situated)\b[^.]{0,40}?\b(?:in|at|on)\s+"
        rf"(?:the\s+)?(?!{_MONTH}\b)[A-Z]|\b(?i:headquarter)"
    ),
    "situation": re.compile(r"\b(?:when|whenever|if|once|unless|until|as soon as)\b", re.I),
    # a quantity: a number (not a year or a date) followed by what it counts or measures
    "number": re.compile(
        r"(?<![\w.-])(?:\d+(?:[.,]\d+)*|(?:two|three|four|five|six|seven|eight|nine)(?:teen)?|"
        r"ten|eleven|twelve|thirteen|fifteen|eighteen|(?:twen|thir|for|fif|eigh)ty(?:-\w+)?|"
        r"(?:six|seven|nine)ty(?:-\w+)?|hundred|thousand|million|billion|trillion|dozen|double|"
        r"half)(?:\s+(?:to|or|and)\s+\d+(?:[.,]\d+)*)?"
        r"(?:\s+[a-zA-Z/]+|\s*%|-(?-i:[a-z]+)\b|[a-zA-Z]{1,3}\b)"
        # a magnitude in a unit's name: "By processing petabytes of text"
        r"|\b(?:kilo|mega|giga|tera|peta|exa|zetta)(?:bytes|bits|flops)\b",
        re.I,
    ),
    "reason": re.compile(
        r"\b(?:because|since|so that|due to|owing to|in order to|as a result|reason|caused by|"
        r"results? from|after (?:the|a|an)|hence|thus|therefore)\b|"
        # what a thing makes possible answers "why would one use it?"
        r"\b(?:this|which|it) (?:allows|enables|lets|makes it possible)\b|" + _ORIGIN,
        re.I,
    ),
    # examples named, or listed: "C's derived types are the array, function, pointer and union"
    "example": re.compile(
        r"\b(?:such as|e\.g\.|for example|for instance|including|"
        r"(?:examples?|applications|uses) (?:is|are|include))\b"
        r"|\b[\w-]+(?:,\s+(?:the\s+)?[\w-]+){2,},?\s+(?:and|or)\s+[\w-]+",
        re.I,
    ),
    # a yes/no question is settled by a sentence that asserts or denies: "It is not in the
    # public domain", "Yes, through ...", not by the entry's description
    "yesno": re.compile(
        r"^(?:yes|no)\b|\b(?:not|no|never|none|nor|neither|cannot|unable|impossible)\b|n't\b",
        re.I,
    ),
}
# the fact stated as an answer: "written by Robert Corbett", "first delivered in 1964"
STRONG_TYPE: dict[AnswerType, re.Pattern[str]] = {
    "person": re.compile(
        r"\b(?i:written|developed|designed|invented|created|coined|founded|built|implemented|"
        r"introduced|proposed|produced|made|started|popularised|popularized|devised|conceived|"
        r"defined|named|published|released|maintained|funded|led|run|owned|commissioned)\s+"
        r"(?:[\w,-]+\s+){0,3}?by\s+(?:the\s+|a\s+)?(?:[a-z]+\s+)?[A-Z]|"
        r"\b(?:author|inventor|creator|developer|designer|maker|founder|vendor|manufacturer|"
        r"maintainer)s? of\b[^.]{1,80}\b(?:is|was|are|were)\s+[A-Z]"  # a field, or prose
    ),
    "place": re.compile(
        r"\b(?i:born|located|based|headquartered|developed|written|founded|held|built|made|"
        r"created|designed|implemented|invented)\s+(?:[\w,-]+\s+){0,3}?(?:in|at)\s+(?:the\s+)?"
        rf"(?!{_MONTH}\b)[A-Z]"
    ),
    "time": re.compile(
        r"\b(?i:in|since|from|around|about|circa|ca\.|on|during|until|by|of)\s+(?:about\s+|"
        rf"early\s+|late\s+|mid-?|the\s+)?(?:{_MONTH}\s+(?:\d{{1,2}},?\s+)?)?"
        r"(?:1[5-9]\d\d|20\d\d)|"
        r"\b(?:year|date)s? of\b[^.]{1,80}\b(?:is|was|are|were)\s+(?:about\s+|around\s+)?"
        r"(?:1[5-9]\d\d|20\d\d)"  # a field: "The release year of Bison is 1985."
    ),
}


_REQUEST = re.compile(
    r"^(?:can|could|would|will) you (?:please )?(?:give|tell|explain|list|name|describe|show|"
    r"say|summari[sz]e|define)\b",
    re.I,
)


_COUNT = re.compile(r"^how many\b", re.I)
# "On roughly how many ...?", "And when ...?", "About how much ...?": the asking comes after it
_HEDGE = re.compile(
    r"^(?:(?:and|but|so|on|at|to|by|about|roughly|approximately|around|circa|just|exactly|"
    r"precisely)\s+)+(?=(?:how|when|who|whom|whose|(?:what|which) years?)\b)",
    re.I,
)
_EXAMPLES = re.compile(
    r"\bexamples?\b|\bname (?:some|a few)\b|\b(?:give|list)(?: me)? (?:some|a few|several|"
    r"a couple of) (?:\w+ )?(?:applications|uses|instances|kinds|types)\b|"
    r"^what are some (?:\w+ )?(?:applications|uses)\b",
    re.I,
)


# "In functional programming, can every ...?", "Back in the 1990s, were ...?": a leading phrase;
# "quick check: will A* ...?", "honest question - does it ...?": a label before a yes/no one
LEAD_PHRASE = re.compile(
    r"^[^,?]{1,80},\s+(?=(?:is|are|was|were|can|could|does|do|did|should|will|would|has|have|"
    r"who|whom|whose|when|where|why|how|what|which|in what|in which|at what|under what)\b)|"
    r"^[^,?:]{1,30}(?::|\s[-–—])\s+"
    r"(?=(?:is|are|was|were|can|could|does|do|did|should|will|would|has|have)\b)",
    re.I,
)

# "Christopher Strachey - when did he die?": a name, then the question about it
_NAME_DASH = re.compile(
    r"^(?!(?:how|why|what|when|who|which|is|are|do|does|can)\b)(?:[\w.+#/'’-]+\s){1,4}[-–—]\s+"
    r"(?=(?:who|whom|whose|when|where|why|how|what|which|in what|in which)\b)",
    re.I,
)


def asking(question: str) -> str:
    """The question sentence ("MySQL is named after somebody's daughter. Whose?" asks "Whose?")
    without a leading phrase or hedge ("On roughly how many PCs ...?" asks "how many")."""
    q = next(
        (s for s in question_sentences(question) if s.endswith("?")), respell(question.strip())
    )
    return _HEDGE.sub("", _NAME_DASH.sub("", LEAD_PHRASE.sub("", q)))


def answer_type(question: str) -> AnswerType:
    """The kind of fact asked for, read from the question sentence after any leading phrase."""
    q = asking(question)
    # "Could you give some examples of X?", "What is X used for? Give a few applications."
    if _EXAMPLES.search(q) or any(_EXAMPLES.search(s) for s in question_sentences(question)):
        return "example"
    if _REQUEST.match(q):  # "Could you tell me about X?" asks for X
        return "other"
    return next((t for t, p in _TYPE_PATTERNS if p.search(q)), "other")


def asked_types(question: str) -> list[AnswerType]:
    """Every kind of fact the question asks for, the main one first: "When was X coined, and by
    whom?" asks for a time and a person."""
    clauses = [c for c in _CLAUSE.split(question.strip()) if c and c.strip()]
    kinds = [answer_type(question)]
    for clause in clauses[1:]:
        kind = answer_type(clause)
        if kind not in ("yesno", "other") and kind not in kinds:
            kinds.append(kind)
    defines = [_defines(c) for c in clauses]
    if (len(kinds) > 1 and any(defines)) or any(defines[1:]):
        # "What is X, and why ...?", "Where does the name come from, and what does it mean?",
        # "In hacker slang, what does X mean?": X's definition is asked for too
        kinds.append("definition")
    return kinds


def asks_definition(question: str) -> bool:
    """Does some clause ask what a thing is ("In plain terms, what is a base model?", "What
    does X mean, and who coined it?")?"""
    clauses = [c for c in _CLAUSE.split(respell(question.strip())) if c and c.strip()]
    return any(_defines(c.strip()) for c in clauses)


def _defines(clause: str) -> bool:
    """Does the clause ask what a thing is ("what is X", "what does X mean")?"""
    return bool(_DEFINITION.match(LEAD_PHRASE.sub("", clause)))


_PART = re.compile(
    r"^(?:and\s+)?(?:who|whom|when|why|what|which|how|where|is|are|was|were|does|do|did|can)\b",
    re.I,
)


def later_parts(question: str) -> list[str]:
    """Second questions whose kind of fact no pattern names: "When did occam 2 come out, and
    what did it add?", "What is CC++? Is it a new language?" ("..., and when?" asks a time)."""
    sentences = [s for s in question_sentences(question) if s.endswith("?")]
    clauses = [c.strip() for c in _CLAUSE.split(asking(question)) if c and c.strip()]
    later = [c for c in clauses[1:] if _PART.match(c)] + sentences[1:]
    return [c for c in later if answer_type(c) in ("other", "yesno")]


def asks_parts(question: str) -> bool:
    return bool(later_parts(question))


def type_strength(sentence: str, kind: AnswerType) -> float:
    """1 when the sentence states the asked kind of fact as an answer ("written by X", "in
    1964"), 0.5 when it only holds one (a name, a year), else 0."""
    if not holds_type(sentence, kind):
        return 0.0
    strong = STRONG_TYPE.get(kind)
    return 1.0 if strong is None or strong.search(sentence) else 0.5


def holds_type(sentence: str, kind: AnswerType) -> bool:
    pattern = HAS_TYPE.get(kind)
    if pattern is None:
        return True
    if kind == "number":  # "in 1985" or "1997-05-15" is a date, not an asked quantity
        sentence = _YEAR.sub("", sentence)
    return bool(pattern.search(sentence))


def asks_count(question: str) -> bool:
    """ "How many ...?": only a sentence holding a quantity can answer it."""
    return bool(_COUNT.match(asking(question)))


# the assistant's own view asked for: "In your opinion, ...?", "Which do you personally think
# is best?", "What's your favourite ...?" -- a glossary states facts and holds no opinion
_OPINION = re.compile(
    r"\b(?:in your (?:own |personal |honest )?(?:opinion|view)|(?:do|would) you personally|"
    r"you personally (?:think|believe|prefer|like|recommend)|"
    r"your (?:own |personal |honest )?(?:opinion|favou?rites?|preference|take on))\b",
    re.I,
)


def asks_opinion(question: str) -> bool:
    """The question asks for the assistant's opinion rather than for what the glossary says."""
    return bool(_OPINION.search(question))


# "Who were the authors of the paper?", "Which two people wrote SATAN?": the people asked for
# by a word for people, so a sentence naming an organisation ("coined by Stanford University")
# does not answer it, while "Who coined the term?" may be answered by one
_PEOPLE_ASKED = re.compile(
    rf"^(?:who|which|what)\s+(?:{_NOT_AUX}[\w-]+\s+){{0,2}}?(?:(?:are|were|is|was)\s+)?(?:the\s+)?"
    rf"(?:{_NOT_AUX}[\w-]+\s+){{0,2}}?(?:authors?|people|persons?|"  # "the (actual|lead) authors"
    r"researchers?|scientists?|inventors?|creators?|designers?)\b",
    re.I,
)
_NOT_A_PERSON = frozenset((
    "university", "universities", "institute", "institution", "laboratory", "laboratories",
    "lab", "labs", "center", "centre", "corporation", "corp", "inc", "ltd", "company", "group",
    "association", "society", "department", "college", "school", "research", "foundation",
    "model", "models", "language", "languages", "system", "systems", "standard", "project",
    "network", "networks", "computer", "computers", "software", "press", "council", "agency",
    "office", "observatory",
))  # fmt: skip
_PERSON = re.compile(
    r"\b[A-Z][a-z]+(?:\s+[A-Z]\.)*\s+(?:(?:van|von|de|der|da|di|le)\s+)?[A-Z][a-z'\u2019-]+\b"
    r"|\bby\s+[A-Z][a-z]+\s+and\s+[A-Z][a-z]+\b|\b[A-Z][a-z]+\s+&\s+[A-Z][a-z]+\b"
)


# "by Mike Sample", "by the IETF", "Brian Kernighan's preprocessor": the sentence says who
_BY_WHOM = re.compile(r"\bby\s+(?:the\s+)?[A-Z]|\b[A-Z]\w*['\u2019]s\s")


def says_who(sentence: str) -> bool:
    """Does the sentence say who made or does the thing? "The official body developing
    Wireless Application Protocol." does not: its entry's name is who."""
    return type_strength(sentence, "person") == 1.0 or bool(_BY_WHOM.search(sentence))


def asks_people(question: str) -> bool:
    """The question asks for people by a word for them (authors, inventors, researchers)."""
    return bool(_PEOPLE_ASKED.search(asking(question)))


def names_person(sentence: str) -> bool:
    """Does the sentence name a person ("Robert Corbett", "Arthur W. Burks", "by Goos and
    Wulf"), not only an organisation or a thing in title case ("Stanford University")?"""
    return any(
        not ({w.lower() for w in re.findall(r"[A-Za-z]+", m.group())} & _NOT_A_PERSON)
        for m in _PERSON.finditer(sentence)
    )


# the name of a thing asked for: "What do you call X?", "What's the term for X?", "What is it
# called when ...?" -- a glossary answers with the entry that is X, its title first
_TERM_ASKED = re.compile(
    r"^(?:what|which \w+)\s+(?:do|does|would|should)\s+(?:you|we|one|people|they|i)\s+call\b|"
    r"^what(?:'?s|\s+is|\s+are)\s+(?:the\s+|a\s+)?(?:[\w-]+\s+){0,3}?(?:term|word|name|jargon|slang|"
    r"expression|phrase)\s+(?:used\s+)?for\b|"
    r"^what(?:'?s|\s+is)\s+(?:the\s+)?name\s+(?:of|for)\s+(?=(?:(?:the|a|an)\s+)?[\w\s'+-]{1,60}?"
    r"\s+(?:where|when|that|which|in which|whereby)\b)|"
    r"^what\s+(?:is|are|was|were)\s+[^?]{1,80}?\s+called\b|"
    r"^which\s+(?:term|word|name)\s+(?:describes|means|is used)\b|"
    # "Is there a programming language that's basically BASIC but ...?" asks for its name
    r"^(?:is|are)\s+there\s+(?:a|an|any)\s+(?:[\w-]+\s+)?(?:name|term|word|language|program|"
    r"tool|protocol|format|standard|algorithm|device|machine|command|utility)s?\b",
    re.I,
)


def asks_term(question: str) -> bool:
    """The question asks what something is called, not what something is."""
    return bool(_TERM_ASKED.search(asking(question)))
