"""Configuration: YAML bundles and configs checked against typed schemas and resolved, before any job runs.

    typed.py       plain YAML data onto dataclass schemas (types, unknown keys, merging layers)
    errors.py      ConfigError: every refusal names the file and the full key
    schema.py      a paper bundle, a scale, a cluster; a paper resolved at one scale
    stage.py       a stage as a bundle writes it (kind, data, rewards, objective, data_args)
    components.py  models, datasets, eval suites (configs/<kind>/<name>.yaml)
    checks.py      names, ranges and combinations (reading the registries, never torch)
    claims.py      claims, reported numbers, sources and deviations: what a bundle says about its paper
    constraints.py the README tables generated from configuration (ranges, deviations)
    read.py        a config file parsed once, built onto its schema; load_component (configs/<kind>/<name>.yaml)
    resolve.py     a scale's layers merged; a variant's stages resolved with the scale's changes to them
    load.py        load_paper, load_cluster: the resolved parts put together and checked as a whole
    plain.py       resolved configs as plain data, and their fingerprints

Import from the module that defines a name (`from harness.config.load import load_paper`); this package
itself imports nothing, so the schemas can be read from anywhere without pulling in the loader.
"""
