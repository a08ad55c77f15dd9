"""Monitoring: what users say of answers (feedback), and what live traffic does over time."""
