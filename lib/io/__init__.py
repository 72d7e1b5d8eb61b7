"""Input and output: the data sets, CSV files, and the exports (history tables and the script).

Built on the engine and the twins; they never import the lessons or charts.
"""
