"""Vendor webhook adapters: each turns one vendor payload into canonical event dicts.

Adapters only translate. The result goes through the same validation, dedupe
and publishing as ``POST /v1/events``, so a vendor event is held to the same
contract as any other. Each adapter is a pure function of the payload (easy to
test with the vendors' documented example payloads).
"""
