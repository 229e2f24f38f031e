"""The tokenizer shared by BM25, the coverage test, verification and the reader."""

from chatbot.tokens import query_terms, tokenize


def test_tokenize_lowercases_stems_and_drops_stopwords() -> None:
    assert tokenize("What are the Models running?") == ["model", "run"]
    assert tokenize("fine-tuning LoRA's") == ["fine", "tune", "lora"]  # 's is one char: dropped
    assert tokenize("a b c I") == []
    assert tokenize("Café crème") == ["café", "crème"]
    assert tokenize("Why does it work? How can it?") == ["work"]
    assert tokenize("") == []


def test_words_of_the_asking_are_no_query_terms() -> None:
    assert query_terms("Which company did you say makes GPT?") == ["compani", "say", "make", "gpt"]
    assert tokenize("Who makes GPT?") == ["who", "make", "gpt"]  # answers still read "who"
    assert query_terms("wat r lora and qlora for") == ["lora", "qlora"]  # chat spelling too
