"""State the gateway keeps between calls: rate-limit windows, budget reservations, the
response cache and the registry change counter. Each has an in-process form and a shared
one (Redis or the database) for several workers or replicas."""
