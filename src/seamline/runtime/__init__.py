"""The serving-runtime layer: the engines' own metrics read into one vocabulary, the live
load the gateway routes on, a simulated engine for tests and benchmarks, and the KV-cache
planner. Usable without a server: it imports nothing above ``core``."""
