"""The AI gateway: one OpenAI-compatible ingress for every LLM call of an application."""
