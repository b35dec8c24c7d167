"""ganlab's Hydra sweeper over Optuna >= 4 (``hydra/sweeper=ganlab_optuna``): Optuna searches, the sweeper
maps each trial to one job of the launcher, in a run folder named by the trial's number. Hydra finds it in
the ``hydra_plugins`` namespace package, from a checkout (``PYTHONPATH=src``) or an installed wheel."""
