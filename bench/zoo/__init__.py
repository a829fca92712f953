"""The failure zoo: each suspected cause of a failed GAN run, induced by one config overlay, and what
`codecgan diagnose` says about it.

    .venv/bin/python -m bench.zoo                                   # everything (make zoo)
    .venv/bin/python -m bench.zoo random_eval_crop healthy_codec    # a subset

Each overlay in experiments/zoo/ names its base config on its first line (`entries`: the overlays and what each
should raise). Every overlay runs as its own `codecgan fit` process within the step budget the overlay sets (at most
--slots processes at once, each with one intra-op thread; the DDP overlay takes one slot per rank), then
`codecgan diagnose --json` reads its TensorBoard directory (`runner`). The table (printed, and written to
bench/results/zoo.md and zoo.json by `report`) has one row per overlay: the code the fault should raise, the codes
found above `info`, whether the expected one was found, how many steps after the fault began it was first seen, the
controls' findings above `info` (false alarms), the discriminator's loss relative to its chance value, and the wall
time. An entry may first write what its run needs into the run's folder (`data_leak`'s audio folders), or run as a
fit and a resume from its checkpoint with changed arguments (`resume_discontinuity`), both in the same folder and
TensorBoard run. `plots` draws each run's key curve next to its family's control in bench/results/zoo/<name>.png.
"""
