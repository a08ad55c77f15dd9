"""Retrieval: sources read and chunked into versioned indexes, and searched."""
