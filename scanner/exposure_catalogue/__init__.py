"""The exposure catalogue (E1-E4): YAML data files plus the model that validates them."""

from scanner.exposure_catalogue.model import Catalogue, Entry, Family, Signal, load_catalogue

__all__ = ["Catalogue", "Entry", "Family", "Signal", "load_catalogue"]
