"""Reports of search runs: read a run folder (load), its numbers as tables (tables), its pictures (figures/),
all of it as one Markdown page (markdown). `nas report` and `nas show --figure` are the commands."""
