"""The embedded Prefect platform, what runs on one laptop with no cloud account.

`server` starts and stops the local Prefect server and its worker; `processes` and `preload`
start every local process (model APIs too) and warm-start them; `work_pools` and `queues` are
the pool the flows run on and the queue each release gets; `deploy` applies `prefect.yaml`;
`rest` reads the server without importing Prefect; `reports` links what a person is sent to.

May import: ids, spec, settings, aws (Fargate sizes). Everything else may import it.
"""
