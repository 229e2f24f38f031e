"""Start the glossary-chat web UI: `python app.py` (settings from CHATBOT_* variables)."""

from chatbot.config import apply_runtime_env

if __name__ == "__main__":
    apply_runtime_env()  # before Gradio and the model libraries are imported

    from chatbot.ui import launch

    launch()
