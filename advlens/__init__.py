"""advlens: an interactive lab for adversarial attacks and defenses on image classifiers."""

__version__ = "0.1.0"
