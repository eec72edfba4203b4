"""Formulations: hard decisions of a training loop as BQMs, with decoders and repair steps."""
