"""Model projects and the bundles built from them: the artifact every later step tests and ships.

`bundle` builds and opens content-addressed bundles (`integrity` checks that a bundle's files
are still the ones its manifest lists), `model_files` loads model files without
running code they were not meant to carry, `image` is a bundle's container image, `notebook`
turns a fitted model into a project, and `projects` finds the projects a change touches.

May import: spec, settings. Everything else may import it.
"""
