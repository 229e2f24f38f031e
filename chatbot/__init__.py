"""glossary-chat: a retrieval-augmented FAQ chatbot that answers from a glossary corpus with
numbered citations, and says so when the corpus does not cover a question."""

__version__ = "0.1.0"
