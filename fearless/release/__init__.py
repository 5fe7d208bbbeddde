"""The release pipeline's own concepts, what its steps pass and decide.

`candidate` (what moves between steps), `provisioning` (its test environments), `gates` (the
load and drift verdicts a candidate must pass), `approval` (the decision a person gives, how
it is verified and its audit trail; `signing` makes and checks its SSH signatures, and
`approval_gate` waits for one the flow accepts), `outcomes` (what a release ended as, and
CI's exit code), `options` (the form that starts a release in the UI) and `runs` (starting,
following and deciding releases through the Prefect API).

May import: spec, settings, bundles, platform, environments, serving, loadtest, drift. Never
production, evidence, composition or the command line.
"""
