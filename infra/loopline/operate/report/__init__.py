"""`loopline report`: one self-contained HTML file per model version or monitoring run.

sources.py reads what the functions recorded (manifest, evaluation, report numbers, monitoring runs),
figures.py draws each figure from those numbers with matplotlib, page.py lays out the HTML.
"""
