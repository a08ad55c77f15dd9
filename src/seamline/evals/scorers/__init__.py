"""The built-in scorers (``seamline.evals.scoring`` names them)."""
