"""neuco-io: validate, convert and stream the NeuCo-Bench / SSL4EO-S12 datasets."""

__version__ = "0.1.0"
