"""The framework-free domain core: rules behind ports.

Imports attrs, bcrypt, jwt and the standard library only.
"""
