"""Parts shared by several models; each module holds one of them.

* ``settings``           the training settings every iterative model has (lr,
                         batch_size, epochs, patience, device, ...), one help
                         text each; a model's Config inherits them and only
                         overrides defaults.
* ``linear``             the linear item scorer s = state @ W[items]^T + b[items].
* ``mf``                 the MF net x̂_ui = <p_u, q_i> + b_i (``ItemBiasMF``), its
                         serving form (``MFScorer``) and BPR fold-in (BPR-MF, IRGAN).
* ``pairwise``           BPR's triple sampler and LearnBPR step (BPR-MF, IRGAN's
                         generator pre-training).
* ``click_autoencoder``  the multinomial click autoencoder: sparse input, training
                         loop and likelihood (Mult-VAE, Mult-DAE).
* ``nade``               CF-NADE's network and cost (CF-NADE, I-CF-NADE).
* ``search``             the search-space declaration (ranges, log scales, choices,
                         fixed values, conditions) each model states next to its
                         Config and ``training.tuning`` hands to Optuna.

Nothing here is registered: models are the files in ``training/models`` that
``training.models.REGISTRY`` names.
"""
