"""One pure function per figure/table family, each returning a tidy pandas DataFrame."""
