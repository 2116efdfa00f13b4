"""Running the study: the ``aine`` command line, the notebook driver, executors for grids of runs, the book."""
