"""Run the reference OmniFold package (PyPI ``omnifold`` 0.1.36, TensorFlow) on one problem.

Runs only in the benchmark venv (``bash bench/make_omnifold_venv.sh``); ``bench/unfold.py``
calls it as a subprocess with an ``.npz`` of the inputs and reads back an ``.npz`` of results.
Nothing from physgen is imported here: the two implementations share only the events.

Inputs (``--inputs``): ``mc_gen (N, D)``, ``mc_reco (N, D)``, ``mc_pass_gen``, ``mc_pass_reco``
(N,) bool, ``mc_weight (N,)``, ``data_reco (M, D)``, ``data_weight (M,)``, all already
standardised by the caller (the package does not standardise; the Z+jet demo of 1911.09107
feeds standardised inputs). Outputs (``--out``): ``push (iterations, N)`` the push weights after
each iteration (the unfolded particle-level weights are ``push[-1] * mc_weight``), ``cpu_s`` and
``wall_s`` of the whole unfolding (process CPU time, all threads).

The Keras-3 workaround: omnifold 0.1.36 clones its models with ``tf.keras.models.clone_model``
while compiled with the unregistered custom loss ``weighted_binary_crossentropy``, which fails
under Keras 3 (fixed upstream on 2025-05-28, not released); registering the package's own loss
function as a Keras custom object before ``Unfold()`` is enough.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--layers", default="100,100,100")
    ap.add_argument("--activation", default="leaky_relu")
    ap.add_argument("--ensemble", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.keras.utils.set_random_seed(args.seed)

    from keras.saving import get_custom_objects
    from omnifold import DataLoader, MultiFold
    from omnifold.net import MLP, weighted_binary_crossentropy

    get_custom_objects()["weighted_binary_crossentropy"] = weighted_binary_crossentropy

    z = np.load(args.inputs)
    f32 = np.float32
    mc = DataLoader(
        reco=z["mc_reco"].astype(f32),
        gen=z["mc_gen"].astype(f32),
        pass_reco=z["mc_pass_reco"],
        pass_gen=z["mc_pass_gen"],
        weight=z["mc_weight"].astype(f32),
        normalize=True,
    )
    data = DataLoader(
        reco=z["data_reco"].astype(f32),
        weight=z["data_weight"].astype(f32),
        normalize=True,
    )
    layers = [int(s) for s in args.layers.split(",")]
    nvar = z["mc_gen"].shape[1]
    pushes: list[np.ndarray] = []

    class Recording(MultiFold):  # type: ignore[misc]
        def RunStep2(self, i: int) -> None:  # the package's method name
            super().RunStep2(i)
            pushes.append(np.array(self.weights_push, dtype=np.float64))

    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        of = Recording(
            "bench",
            MLP(nvar, layer_sizes=layers, activation=args.activation),
            MLP(nvar, layer_sizes=layers, activation=args.activation),
            data,
            mc,
            weights_folder=os.path.join(tmp, "weights"),
            log_folder=tmp,
            niter=args.iterations,
            n_ensemble=args.ensemble,
            batch_size=args.batch_size,
            epochs=args.epochs,
            lr=args.lr,
            early_stop=args.patience,
            verbose=False,
        )
        of.Unfold()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    np.savez(args.out, push=np.stack(pushes), cpu_s=cpu, wall_s=wall)
    print(f"omnifold {args.iterations} iterations: {wall:.1f} s wall, {cpu:.1f} s CPU")


if __name__ == "__main__":
    main()
