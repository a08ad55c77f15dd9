"""seamline: the LLMOps layer on top of the MLOps stack a team already runs.

The public Python surface is the SDK client::

    from seamline import Client
    client = Client(base_url="http://127.0.0.1:8750", api_key="sk-seam-...")
    prompt = client.prompts.get("support-answer", alias="production")
    rendered = prompt.render(question="Where is my order?", context="...")
"""

from seamline.sdk import Client, Prompt

__version__ = "0.1.0"
__all__ = ["Client", "Prompt", "__version__"]
