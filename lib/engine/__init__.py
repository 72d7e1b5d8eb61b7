"""The engine: the Config, the data and its batch order, the twins' lockstep run, and stepping.

Imports the twins only.
"""
