"""The contract the site box and the HQ hub share: messages, topics, canonical hashing and rule semantics.

Pure: no I/O, no threads, no clock reads. Everything time-dependent takes the time as an argument.
"""
