"""Layer search: YAML spaces with LRS priors, Ray Tune + Optuna (TPE) with ASHA, results table and report."""
