"""What is kept between scans: the history store (runs, results, the run lock), comparisons between
runs (diff, control history), the members file and the portfolio pages written from stored runs."""
