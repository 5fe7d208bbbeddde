"""The ECS backend of test environments, split by what each part does: `backend` (the
EnvironmentBackend), `config`, `definitions` (task definitions), `inventory` (what a run
created, by tag) and `waiting`."""
