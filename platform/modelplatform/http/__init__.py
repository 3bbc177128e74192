"""The HTTP layer: blueprints parse requests and shape responses; all work is delegated to the data plane."""
