"""Interventions on a trained model's attention, the encoder held fixed.

* :mod:`aine_lib.interventions.attention` -- permutation and adversarial attention (Jain & Wallace 2019).
* :mod:`aine_lib.interventions.erasure` -- attention erasure (Serrano & Smith 2019).
"""
