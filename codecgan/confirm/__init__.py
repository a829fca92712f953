"""`codecgan confirm`: each finding's experiment, run as ordinary training runs, with a verdict."""
