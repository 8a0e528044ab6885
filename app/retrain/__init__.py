"""Retraining: durable jobs, leases, the evaluation gate and the job runner.

``lifecycle`` holds the rules of a job's life (request validation, claim,
lease, progress, outcome, cancel, periodic schedule), ``export`` what a job
trains on, ``gate`` the production-vs-candidate comparison, ``runner`` one
job from claim to finish. ``app/worker.py`` loops over them; the admin
routes use ``lifecycle`` only, so the web process never imports the trainer.
"""
