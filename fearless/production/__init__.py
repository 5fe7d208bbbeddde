"""What serves in production and how it changes.

`service` is what promotion needs of any platform's production service; `local` (model APIs
behind each model's nginx `front`, kept up by `fronts`) and `ecs` (an ECS service behind the
internal ALB) implement it.
`promotion` moves the registry's alias and the service together, `bake` watches production
after a switch (through `front_log` where the front logs) and rolls back, and `slot` lets one
promotion per model run at a time.

May import: spec, settings, aws, bundles, platform, registry, environments (the ECS task
definitions a production service shares with test environments). Never release or evidence.
"""
