"""The lessons: the checked explanations, the pitfalls, the loss landscape, classification, speed.

Built on the engine and the twins; they never import io or charts.
"""
