"""Settings, ids, time, hashing and errors shared by every layer; imports nothing of seamline."""
