"""Model builders; each module registers its variants in `zoo.registry`."""
