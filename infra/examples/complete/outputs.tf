output "fearless_env" {
  description = "FEARLESS_* settings for backend=aws, ready to export."
  value = {
    FEARLESS_BACKEND                = "aws"
    FEARLESS_AWS_REGION             = var.region
    FEARLESS_AWS_CLUSTER            = module.ecs.cluster_name
    FEARLESS_AWS_SUBNETS            = jsonencode(var.private_subnet_ids)
    FEARLESS_AWS_SECURITY_GROUPS    = jsonencode([module.network.environments_security_group_id])
    FEARLESS_AWS_ECR_REPOSITORY     = module.registry.repository_url
    FEARLESS_AWS_BUCKET             = module.registry.bucket_name
    FEARLESS_AWS_NAMESPACE_ID       = module.network.namespace_id
    FEARLESS_AWS_EXECUTION_ROLE_ARN = module.ecs.execution_role_arn
    FEARLESS_AWS_TASK_ROLE_ARN      = module.ecs.task_role_arn
    FEARLESS_AWS_LOG_GROUP          = module.ecs.log_group_names["environments"]
    FEARLESS_WORK_POOL              = "fearless-ecs"
    # the ECS work pool's flow-run tasks (fearless.platform.work_pools.ecs_template_for)
    FEARLESS_AWS_VPC_ID                  = var.vpc_id
    FEARLESS_AWS_FLOW_IMAGE              = var.flow_image
    FEARLESS_AWS_FLOW_TASK_ROLE_ARN      = module.prefect_worker.worker_role_arn
    FEARLESS_AWS_FLOW_SECURITY_GROUPS    = jsonencode([module.network.worker_security_group_id])
    FEARLESS_AWS_PREFECT_AUTH_SECRET_ARN = var.prefect_auth_secret_arn
    FEARLESS_AWS_INFERENCE_PREFIX        = var.inference_prefix
    # the load generator's ECS tasks (fearless.loadtest.ecs_fleet); empty until flow_image is set
    FEARLESS_AWS_LOADGEN_TASK_DEFINITION = module.load_generator.task_definition_family == null ? "" : module.load_generator.task_definition_family
    # the production services' target tracking, so promotions assert what Terraform declared
    FEARLESS_AWS_PRODUCTION_MIN_TASKS          = var.production_min_tasks
    FEARLESS_AWS_PRODUCTION_MAX_TASKS          = var.production_max_tasks
    FEARLESS_AWS_PRODUCTION_TARGET_CPU_PERCENT = var.production_target_cpu_percent
  }
}

output "ci_push_policy_json" {
  description = "Attach to CI's OIDC role (FEARLESS_AWS_ROLE_ARN) so the release workflow can push images and source packs."
  value       = module.registry.ci_push_policy_json
}

output "production_urls" {
  description = "Where each production model is served."
  value       = { for model, service in module.production_service : model => service.url }
}

output "prefect_api_url" {
  description = "PREFECT_API_URL the worker uses: the server run here, or the one given."
  value       = local.prefect_api_url
}
