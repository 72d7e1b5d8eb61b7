"""What the pages share, one job a module. Each imports only modules listed before it:

labels        the controls' labels, help texts, ranges and defaults (text and constants)
navigation    the check that a page runs inside app.py's navigation; links between pages
cached        the data, cached at numpy level; the least-squares answer; the last run
run_cache     finished runs and their charts, shared read-only by every session of the server
widgets       Drawn: each control drawn with the session and URL keeping, and what it accepts
presets       a preset's settings put into the controls, and put back when the learner leaves it
links         a link's parameters checked against the controls; text shown as itself
csv_controls  the CSV upload and its column pickers
build         the Dataset and Config the controls' values describe
sidebar       the training sidebar every page shares (sidebar_config)
twin_table    the markdown table of the torch lines beside their hand-written twins
server        imported by app.py alone: once per process, the imports frozen out of the GC's walk
"""
