"""One report for every run (``page.py``): findings written from the numbers
(``findings.py``), the report's own tables and figures (``sections.py``, ``plots.py``) beside
each benchmark's (found in ``prmkit.evaluate``'s registry), and the step viewer
(``viewer.py``). Sections that need the step truth appear when the run has it."""
