"""HTTP plumbing under the gateway: raw ASGI helpers for the hot path, the uvicorn protocol
that times out slow clients, worker lifetime, and the OpenAPI declarations of the raw
routes. Nothing here knows about prompts, models or money."""
