"""codecgan's benchmarks and its failure zoo, each a module run from the repository root as
`python -m bench.<name>` (`make bench` runs the benchmarks through `bench.run_all`, `make zoo` runs `bench.zoo`).
They import codecgan as its users do; their measured tables are kept in `bench/results/`.
"""
