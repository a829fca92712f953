"""What codecgan's tests and its failure zoo (`bench/zoo`, `experiments/zoo/`) use to make failures happen on
purpose: fault injection (`codecgan.testing.faults`). Nothing here belongs in a training config; a run that uses
it is broken by design.
"""
