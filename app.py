"""Start the glossary-chat web UI: `python app.py` (settings from CHATBOT_* variables)."""

from chatbot.ui import launch

if __name__ == "__main__":
    launch()
