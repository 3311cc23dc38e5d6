"""A stateful Cal.com API v2 simulator: the peer of every integration test and of ``make run``."""
