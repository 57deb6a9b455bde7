"""The example's gallery: models that use the analysis mixin."""
