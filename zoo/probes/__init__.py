"""Probes: the mathematics of trained networks, measured on a run (`zoo probe RUN PROBE`).

One module per probe, each pure functions of (loss_fn, params, batches) first, then
`run(run, **options) -> dict`, which measures a trained run and writes
run_dir/probes/<probe>.png and <probe>.json:

    landscape    loss along init -> trained, and on a filter-normalised plane
    curvature    top Hessian eigenvalues, Hessian trace, sharpness against 2 / learning rate
    symmetry     invariance / equivariance error under the model's group
    calibration  reliability diagram, ECE, temperature scaling
    gradflow     |dL/dz_l| through depth, |dL/dx_t| through time

A loss_fn here is loss_fn(params, batch) -> (loss_sum, count), so means over several batches
(padded ones included) weigh every example once.
"""
