"""The engine: the Config, the data and its batch order, the lockstep run of the twins, and stepping.

Imports the twins only.
"""
