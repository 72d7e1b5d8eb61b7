"""The twins: the hand-written numpy loop and the torch loop, and the optimizers written by hand.

The bottom layer: these modules import nothing else from lib. Everything above drives them.
"""
