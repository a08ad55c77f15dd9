"""The event of a call, token counts, prices, and the sinks events go to (store, Prometheus)."""
