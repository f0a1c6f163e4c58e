"""Training scripts for the toy model zoo.

Run ``python -m pairsynth_train <model> --out DIR`` (see ``__main__``). Every trainer is
seeded, logs to its work dir, checkpoints every few minutes and resumes with ``--resume``, then
exports its model in the real format that pairsynth loads hub models in.
"""
